import Synchronization

/// The SOA serial of each transferred zone of each view: it goes up when, and only when, the
/// zone's content changes (a catalog change, or a health transition that changes an affine
/// answer), and never goes back (RFC 1982 comparison).
///
/// A new serial is the current Unix time when that is ahead of the last one, else the last
/// one plus one: after a restart, time has moved on, so serials keep increasing without a
/// record of the old ones (unless more than one change a second ran them ahead of the clock;
/// `initial` carries persisted serials for that case). The content is the engine's, built
/// lazily when a secondary asks, so an unchanged view costs nothing.
public final class ViewSerials: Sendable {
    public struct Key: Hashable, Sendable {
        public var view: ViewKey
        public var apex: DNSName

        public init(view: ViewKey, apex: DNSName) {
            self.view = view
            self.apex = apex
        }
    }

    struct Entry {
        var digest: [UInt8]
        var serial: UInt32
    }

    private let entries: Mutex<[Key: Entry]>
    private let clock: @Sendable () -> UInt32

    /// `initial`: serials known from before (persisted); `clock`: seconds since 1970.
    public init(initial: [Key: UInt32] = [:], clock: @escaping @Sendable () -> UInt32) {
        self.entries = Mutex(initial.mapValues { Entry(digest: [], serial: $0) })
        self.clock = clock
    }

    /// The serial of `key` whose content now has `digest`: the same as last time when the
    /// content is the same, a greater one when it changed.
    public func serial(for key: Key, digest: [UInt8]) -> UInt32 {
        entries.withLock { entries in
            if let entry = entries[key], entry.digest == digest { return entry.serial }
            let serial = Self.next(after: entries[key]?.serial, now: clock())
            entries[key] = Entry(digest: digest, serial: serial)
            return serial
        }
    }

    /// Every serial handed out so far, for persisting.
    public var snapshot: [Key: UInt32] { entries.withLock { $0.mapValues(\.serial) } }

    /// The serial after `previous`: `now` when it is greater in RFC 1982 arithmetic, else
    /// `previous + 1` (mod 2^32, which is always greater).
    static func next(after previous: UInt32?, now: UInt32) -> UInt32 {
        guard let previous else { return now }
        return SerialNumber.isGreater(now, than: previous) ? now : previous &+ 1
    }
}

/// RFC 1982 serial number arithmetic on 32-bit serials.
public enum SerialNumber {
    /// True when `a` is greater than `b`: they differ and `a` is less than 2^31 ahead of `b`.
    public static func isGreater(_ a: UInt32, than b: UInt32) -> Bool {
        a != b && (a &- b) < 0x8000_0000
    }
}
