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

    /// One change of a zone, as IXFR sends it (RFC 1995 section 4): the SOA before, the records
    /// that went, the SOA after, the records that came.
    public struct Difference: Sendable {
        public var before: TransferRecord
        public var deleted: [TransferRecord]
        public var after: TransferRecord
        public var added: [TransferRecord]

        var size: Int { deleted.count + added.count + 2 }
    }

    /// What IXFR needs of one zone: its last content, and the latest changes, oldest first.
    struct Journal {
        var soa: TransferRecord
        var records: Set<TransferRecord>
        var differences: [Difference] = []
    }

    /// The journal keeps at most this many changes per zone, and never more records than the
    /// zone has (plus this many): beyond that an AXFR costs less than the deltas.
    public static let journalChanges = 64

    private let entries: Mutex<(all: [Key: Entry], generation: Int)>
    private let journals = Mutex<[Key: Journal]>([:])
    /// Grows with every serial that moves: prepared answers carrying a SOA (`PreparedAnswers`)
    /// are dropped when it changes, one atomic load per batch rather than a lock per answer.
    private let changeCount = Atomic<Int>(0)
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
        change(key) { entry, now in
            entry?.digest == digest ? nil : Entry(digest: digest, serial: Self.next(after: entry?.serial, now: now))
        }
    }

    /// The serial of `key`, reserving one when none was ever handed out: a client is answered
    /// before the zone's content is worked out. The reserved entry has no digest, so the first
    /// `update` moves the serial on from it: a serial is never seen ahead of its content.
    public func reserve(_ key: Key) -> UInt32 {
        change(key) { entry, now in entry == nil ? Entry(digest: [], serial: Self.next(after: nil, now: now)) : nil }.serial
    }

    /// Replaces `key`'s entry with what `next` makes of it (nil: it stays), under the lock, and
    /// tells `onChange` when it was replaced. `next` gets the clock's time.
    private func change(_ key: Key, _ next: (Entry?, UInt32) -> Entry?) -> (serial: UInt32, changed: Bool) {
        let (serial, snapshot): (UInt32, (all: [Key: Entry], generation: Int)?) = entries.withLock { entries in
            guard let replacement = next(entries.all[key], clock()) else { return (entries.all[key]!.serial, nil) }
            entries.all[key] = replacement
            entries.generation += 1
            return (replacement.serial, entries)
        }
        if let snapshot {
            changeCount.add(1, ordering: .releasing)
            onChange(snapshot.all, snapshot.generation)
        }
        return (serial, snapshot != nil)
    }

    /// The serial of `zone` (its content as built now) in `key`'s view, keeping the journal of
    /// changes IXFR answers from (in memory: after a restart, older clients get an AXFR).
    public func update(_ key: Key, zone: TransferZone, digest: [UInt8]? = nil) -> (serial: UInt32, changed: Bool) {
        // One lock around both, so that the journal follows the serials in their order.
        journals.withLock { journals in
            let result = update(key, digest: digest ?? zone.contentDigest)
            let current = zone.with(serial: result.serial)
            guard var journal = journals[key] else {
                journals[key] = Journal(soa: current.soa, records: Set(current.records))
                return result
            }
            guard journal.soa != current.soa else { return result }
            let records = Set(current.records)
            if SerialNumber.isGreater(result.serial, than: TransferZone(apex: zone.apex, soa: journal.soa, records: []).serial) {
                journal.differences.append(Difference(
                    before: journal.soa, deleted: journal.records.subtracting(records).sorted(by: Self.order),
                    after: current.soa, added: records.subtracting(journal.records).sorted(by: Self.order)))
            } else {
                journal.differences = []
            }
            journal.soa = current.soa
            journal.records = records
            var total = journal.differences.reduce(0) { $0 + $1.size }
            while !journal.differences.isEmpty,
                  journal.differences.count > Self.journalChanges || total > records.count + Self.journalChanges {
                total -= journal.differences.removeFirst().size
            }
            journals[key] = journal
            return result
        }
    }

    /// The changes from `serial` to the current content, oldest first; nil when the journal
    /// does not reach back to it (then the client gets the whole zone).
    public func changes(_ key: Key, since serial: UInt32) -> [Difference]? {
        journals.withLock { journals in
            guard let differences = journals[key]?.differences,
                  let first = differences.firstIndex(where: { TransferZone(apex: key.apex, soa: $0.before, records: []).serial == serial })
            else { return nil }
            return Array(differences[first...])
        }
    }

    /// Owner, type, data: a stable order for the records of a difference.
    static func order(_ a: TransferRecord, _ b: TransferRecord) -> Bool {
        if a.owner != b.owner { return a.owner.description < b.owner.description }
        if a.type != b.type { return a.type.rawValue < b.type.rawValue }
        return a.rdata.lexicographicallyPrecedes(b.rdata)
    }

    /// Every entry so far.
    public var snapshot: [Key: Entry] { entries.withLock { $0.all } }

    /// The serial last handed out for `key`, nil when none ever was (not even before a restart).
    /// How many times a serial moved so far (any view, any zone).
    public var changes: Int { changeCount.load(ordering: .acquiring) }

    public func current(_ key: Key) -> UInt32? { entries.withLock { $0.all[key]?.serial } }

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
