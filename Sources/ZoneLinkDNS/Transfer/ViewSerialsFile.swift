import Foundation
import Glibc
import Synchronization

/// The transferred views' serials and content digests on disk (`<state-dir>/view-serials.json`),
/// so that serials never go back across restarts, even after changes ran them ahead of the
/// clock, and a restart with the same content keeps the same serial.
///
/// A file of its own rather than a table of the control plane's store: it is DNS's, written
/// from the DNS side when a serial changes, and losing it only costs serials from the clock.
/// Written whole to a temporary file and renamed, so a crash leaves the old or the new one.
public final class ViewSerialsFile: Sendable {
    public let path: String
    /// The generation last written: a snapshot that overtook a newer one is not written.
    private let written = Mutex<Int>(-1)

    /// The most the file may hold: a few hundred bytes per (view, zone).
    public static let maxSize = 4 << 20

    public init(path: String) {
        self.path = path
    }

    struct Row: Codable {
        var vpc: String
        var zone: String?
        var apex: String
        var serial: UInt32
        var digest: String
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(String, String)
        case malformed(String, String)

        public var description: String {
            switch self {
            case .unreadable(let path, let why): "\(path) cannot be read: \(why)"
            case .malformed(let path, let why): "\(path) is not a view serials file: \(why)"
            }
        }
    }

    /// The entries in the file; none when it does not exist yet.
    public func load() -> Result<[ViewSerials.Key: ViewSerials.Entry], LoadError> {
        guard FileManager.default.fileExists(atPath: path) else { return .success([:]) }
        guard let handle = FileHandle(forReadingAtPath: path) else { return .failure(.unreadable(path, "cannot open it")) }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: Self.maxSize + 1) ?? Data()
        } catch {
            return .failure(.unreadable(path, error.localizedDescription))
        }
        guard data.count <= Self.maxSize else { return .failure(.malformed(path, "larger than \(Self.maxSize) bytes")) }
        let rows: [Row]
        do {
            rows = try JSONDecoder().decode([Row].self, from: data)
        } catch {
            return .failure(.malformed(path, "\(error)"))
        }
        var entries: [ViewSerials.Key: ViewSerials.Entry] = [:]
        for row in rows {
            guard let apex = DNSName(row.apex), let digest = Self.bytes(hex: row.digest) else {
                return .failure(.malformed(path, "a row names \(row.apex) with a malformed digest or name"))
            }
            entries[ViewSerials.Key(view: ViewKey(vpc: row.vpc, zone: row.zone), apex: apex)] = ViewSerials.Entry(digest: digest, serial: row.serial)
        }
        return .success(entries)
    }

    /// Writes `entries` unless a later generation was written already.
    public func save(_ entries: [ViewSerials.Key: ViewSerials.Entry], generation: Int) throws {
        try written.withLock { written in
            guard generation > written else { return }
            let rows = entries.map { key, entry in
                Row(vpc: key.view.vpc, zone: key.view.zone, apex: key.apex.description, serial: entry.serial,
                    digest: entry.digest.map { String(format: "%02x", $0) }.joined())
            }.sorted { ($0.vpc, $0.zone ?? "", $0.apex) < ($1.vpc, $1.zone ?? "", $1.apex) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(rows)
            let temporary = path + ".new"
            try data.write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
            written = generation
        }
    }

    static func bytes(hex: String) -> [UInt8]? {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0, utf8.count <= 128 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: utf8.count, by: 2) {
            guard let byte = UInt8(String(decoding: utf8[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
        }
        return out
    }
}
