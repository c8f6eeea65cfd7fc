import CZoneLinkSystem
import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization
import ZoneLinkCore

/// The attribution log's writer: every flow's open and close appended as JSON lines to
/// `<state-dir>/attribution.log`, rotated by size (`gateway.attribution`).
///
/// Off the flow's path: opening or closing a flow only appends a record to a queue under a
/// lock; one thread formats and writes the queue every `flushInterval`, so a killed server
/// loses at most that much. The queue is bounded: past `queueLimit` waiting records new ones
/// are dropped and a `dropped` line says how many, so a disk that stalls never grows memory.
public final class AttributionLog: Sendable {
    public static let fileName = "attribution.log"
    /// How often the writer appends what waits: the most a kill can lose.
    public static let flushInterval: Duration = .milliseconds(250)
    /// Records waiting at most (about 40 MB): a second of 100,000 flows opening and closing.
    public static let queueLimit = 200_000

    private struct Entry {
        var event: AttributionRecord.Event
        var flow: Flow
        /// The wall clock when it happened, nanoseconds since the epoch.
        var time: Int64
        var reason: FlowCloseReason?
    }

    private struct Queue {
        var entries: [Entry] = []
        var dropped = 0
        var stopping = false
    }

    public let path: String
    private let settings: AttributionSettings
    private let queue = Mutex(Queue())
    private let finished = DispatchSemaphore(value: 0)
    private let started = Mutex(false)
    private let logger: Logger

    /// - Parameter directory: the state directory; the log is `directory/attribution.log`.
    public init(directory: String, settings: AttributionSettings, logger: Logger) {
        self.path = "\(directory)/\(Self.fileName)"
        self.settings = settings
        self.logger = logger
    }

    /// Queues a record of `flow` happening now. The wall clock is read here (a vDSO call), not
    /// derived from the table's monotonic moments, so the log and the clients' clocks agree.
    func record(_ event: AttributionRecord.Event, _ flow: Flow, reason: FlowCloseReason? = nil) {
        let time = Self.wallClock()
        queue.withLock { queue in
            guard queue.entries.count < Self.queueLimit else {
                queue.dropped += 1
                return
            }
            queue.entries.append(Entry(event: event, flow: flow, time: time, reason: reason))
        }
    }

    /// Records waiting for the writer, and dropped since it last wrote.
    var waiting: (Int, Int) { queue.withLock { ($0.entries.count, $0.dropped) } }

    /// Starts the writer thread and writes a `start` line (flows a kill left open ended then).
    public func start() {
        let already = started.withLock { started in
            defer { started = true }
            return started
        }
        guard !already else { return }
        Thread.detachNewThread { [self] in
            // Named for top(1) and /proc/PID/task/*/comm: the benchmark reads its CPU time.
            zl_set_thread_name("attribution")
            var writer = Writer(path: path, settings: settings, logger: logger)
            // The open time and identity of each flow open now, by the table's serial (at most the open flows).
            var openBySerial: [UInt64: (opened: [UInt8], identity: [UInt8])] = [:]
            var encoder = AttributionEncoder()
            let startLine = Array(AttributionRecord(event: .start, time: RFC3339.format(nanoseconds: Self.wallClock())).jsonLine.utf8)
            writer.append(startLine, lineEnds: [startLine.count])
            while true {
                let (seconds, attoseconds) = Self.flushInterval.components
                usleep(useconds_t(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
                let (entries, dropped, stopping) = queue.withLock { queue in
                    defer {
                        queue.entries = []
                        queue.dropped = 0
                    }
                    return (queue.entries, queue.dropped, queue.stopping)
                }
                // One buffer for the batch, with where each line ends (for rotation).
                var batch: [UInt8] = []
                batch.reserveCapacity(entries.count * 360 + 128)
                var ends: [Int] = []
                ends.reserveCapacity(entries.count + 1)
                for entry in entries {
                    batch.append(contentsOf: entry.event == .open ? AttributionEncoder.openPrefix : AttributionEncoder.closePrefix)
                    let timeStart = batch.count
                    encoder.appendTime(entry.time, to: &batch)
                    // A close carries its open's time and identity, which the open's entry fixed.
                    let opened: [UInt8], identity: [UInt8]
                    if entry.event == .open {
                        (opened, identity) = (Array(batch[timeStart...]), encoder.identity(entry.flow))
                        openBySerial[entry.flow.serial] = (opened, identity)
                    } else if let open = openBySerial.removeValue(forKey: entry.flow.serial) {
                        (opened, identity) = open
                    } else {
                        (opened, identity) = (Array(batch[timeStart...]), encoder.identity(entry.flow))
                    }
                    encoder.finish(entry.event, entry.flow, opened: opened, identity: identity, reason: entry.reason, to: &batch)
                    ends.append(batch.count)
                }
                if dropped > 0 {
                    var record = AttributionRecord(event: .dropped, time: RFC3339.format(nanoseconds: Self.wallClock()))
                    record.count = dropped
                    batch.append(contentsOf: record.jsonLine.utf8)
                    ends.append(batch.count)
                }
                writer.append(batch, lineEnds: ends)
                if stopping { break }
            }
            writer.close()
            finished.signal()
        }
    }

    /// Writes what waits and stops the writer; returns once the file is closed.
    public func stop() {
        guard started.withLock({ $0 }) else { return }
        let first = queue.withLock { queue in
            defer { queue.stopping = true }
            return !queue.stopping
        }
        if first { finished.wait() }
    }

    /// Nanoseconds since the epoch now.
    static func wallClock() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// The file and its rotation; used by the writer thread only.
    private struct Writer {
        let path: String
        let settings: AttributionSettings
        let logger: Logger
        var fd: Int32 = -1
        var size = 0

        init(path: String, settings: AttributionSettings, logger: Logger) {
            self.path = path
            self.settings = settings
            self.logger = logger
            reopen()
        }

        mutating func reopen() {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            var info = stat()
            size = fd >= 0 && fstat(fd, &info) == 0 ? Int(info.st_size) : 0
            if fd < 0 { logger.warning("cannot open the attribution log \(path): \(String(cString: strerror(errno))); flows are not recorded") }
        }

        /// Appends `bytes`, whole lines ending at `lineEnds`, rotating first whenever the next
        /// line would take the file past `maxFileSize`.
        mutating func append(_ bytes: [UInt8], lineEnds: [Int]) {
            var chunkStart = 0
            var lineStart = 0
            for end in lineEnds {
                if size + (end - chunkStart) > settings.maxFileSize, size + (lineStart - chunkStart) > 0 {
                    write(bytes[chunkStart..<lineStart])
                    chunkStart = lineStart
                    rotate()
                }
                lineStart = end
            }
            write(bytes[chunkStart..<bytes.count])
        }

        private mutating func write(_ bytes: ArraySlice<UInt8>) {
            guard fd >= 0, !bytes.isEmpty else { return }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    logger.warning("cannot write the attribution log \(path): \(String(cString: strerror(errno)))")
                    return
                }
                offset += n
            }
            size += bytes.count
        }

        /// `attribution.log` becomes `.1`, `.1` becomes `.2`, …; the one past `files` goes.
        private mutating func rotate() {
            if fd >= 0 { Glibc.close(fd) }
            unlink("\(path).\(settings.files)")
            for index in stride(from: settings.files - 1, through: 1, by: -1) {
                rename("\(path).\(index)", "\(path).\(index + 1)")
            }
            rename(path, "\(path).1")
            reopen()
        }

        mutating func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }
}
