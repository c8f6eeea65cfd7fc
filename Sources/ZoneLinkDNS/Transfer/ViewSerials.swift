import Synchronization

/// The SOA serial of each transferred zone of each view: it goes up when, and only when, the
/// zone's content changes (a catalog change, or a health transition that changes an affine
/// answer), and never goes back (RFC 1982 comparison).
///
/// A new serial is the current Unix time when that is ahead of the last one, else the last
/// one plus one. The serials and content digests are persisted (`ViewSerialsFile`, through
/// `onChange`), so a restart with the same content keeps the same serial and one with other
/// content goes up from the last one, even when changes ran serials ahead of the clock.
public final class ViewSerials: Sendable {
    public struct Key: Hashable, Sendable {
        public var view: ViewKey
        public var apex: DNSName

        public init(view: ViewKey, apex: DNSName) {
            self.view = view
            self.apex = apex
        }
    }

    public struct Entry: Sendable, Equatable {
        /// SHA-256 of the zone's content without its serial (`TransferZone.contentDigest`).
        public var digest: [UInt8]
        public var serial: UInt32

        public init(digest: [UInt8], serial: UInt32) {
            self.digest = digest
            self.serial = serial
        }
    }

    private let entries: Mutex<(all: [Key: Entry], generation: Int)>
    private let clock: @Sendable () -> UInt32
    private let onChange: @Sendable ([Key: Entry], Int) -> Void

    /// `initial`: entries known from before (persisted); `clock`: seconds since 1970;
    /// `onChange`: every entry and a generation that grows with each change, after a serial
    /// changed (to persist them: calls may overtake each other, the generation orders them).
    public init(
        initial: [Key: Entry] = [:], clock: @escaping @Sendable () -> UInt32,
        onChange: @escaping @Sendable ([Key: Entry], Int) -> Void = { _, _ in }
    ) {
        self.entries = Mutex((initial, 0))
        self.clock = clock
        self.onChange = onChange
    }

    /// The serial of `key` whose content now has `digest`: the same as last time when the
    /// content is the same, a greater one when it changed.
    public func serial(for key: Key, digest: [UInt8]) -> UInt32 {
        update(key, digest: digest).serial
    }

    /// The serial of `key` for `digest`, and whether it is new (the content changed).
    public func update(_ key: Key, digest: [UInt8]) -> (serial: UInt32, changed: Bool) {
        let (serial, snapshot): (UInt32, (all: [Key: Entry], generation: Int)?) = entries.withLock { entries in
            if let entry = entries.all[key], entry.digest == digest { return (entry.serial, nil) }
            let serial = Self.next(after: entries.all[key]?.serial, now: clock())
            entries.all[key] = Entry(digest: digest, serial: serial)
            entries.generation += 1
            return (serial, entries)
        }
        if let snapshot { onChange(snapshot.all, snapshot.generation) }
        return (serial, snapshot != nil)
    }

    /// Every entry so far.
    public var snapshot: [Key: Entry] { entries.withLock { $0.all } }

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
