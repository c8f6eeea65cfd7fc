import Foundation
import Logging
import Synchronization

/// Log lines for journald: when systemd connects stderr to the journal (`$JOURNAL_STREAM`),
/// each line starts with its syslog priority (`<3>` error … `<7>` debug, sd-daemon(3)) and
/// carries no timestamp, since the journal adds its own. Elsewhere `serve` logs with swift-log's
/// usual stream format.
struct JournalLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let label: String

    private static let output = Mutex(())

    static var isJournal: Bool { ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "<\(Self.priority(event.level))>\(event.message)\(fields.isEmpty ? "" : " " + fields)\n"
        Self.output.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
    }
}
