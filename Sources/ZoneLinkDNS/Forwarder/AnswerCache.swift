import NIOCore

/// What the forwarder caches and coalesces on: the question, with the name folded to lower
/// case (names compare case-insensitively, RFC 4343), and the DO bit, since a DNSSEC-aware
/// answer carries signatures that a DO=0 answer does not (RFC 3225, RFC 4035 section 3.2.1).
public struct ForwardKey: Hashable, Sendable, CustomStringConvertible {
    /// Lower case: `DNSName` always is.
    public var name: DNSName
    public var type: UInt16
    public var qclass: UInt16
    public var dnssecOK: Bool

    public init(name: DNSName, type: UInt16, qclass: UInt16, dnssecOK: Bool) {
        self.name = name
        self.type = type
        self.qclass = qclass
        self.dnssecOK = dnssecOK
    }

    public init(_ query: Query) {
        self.init(name: query.name, type: query.type.rawValue, qclass: query.qclass, dnssecOK: query.edns?.dnssecOK ?? false)
    }

    public var description: String { "\(name) \(RRType(rawValue: type)) class \(qclass)\(dnssecOK ? " +DO" : "")" }
}

/// A bounded cache of forwarded answers, least recently used evicted first.
///
/// Pure (times are passed in) and not thread-safe: `Forwarder` keeps several, each behind its
/// own lock. An entry lives for its answer's `lifetime` from the moment it was received;
/// an expired entry is removed when it is next looked up, or evicted in its turn.
/// Every operation is O(1): a dictionary from key to slot, and the recency order as a doubly
/// linked list threaded through an array of slots.
struct AnswerCache {
    private struct Slot {
        var key: ForwardKey
        var answer: ForwardedAnswer
        var expires: NIODeadline
        var newer: Int
        var older: Int
    }

    let capacity: Int
    private var index: [ForwardKey: Int] = [:]
    private var slots: [Slot?] = []
    private var freeSlots: [Int] = []
    /// Most and least recently used slots; -1 when empty.
    private var newest = -1
    private var oldest = -1
    private(set) var hits = 0
    private(set) var evictions = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { index.count }

    /// The answer for `key` if one is cached and has not expired at `now`; marks it used.
    mutating func lookup(_ key: ForwardKey, now: NIODeadline) -> ForwardedAnswer? {
        guard let slot = index[key], let entry = slots[slot] else { return nil }
        guard now < entry.expires else {
            remove(slot)
            return nil
        }
        hits += 1
        touch(slot)
        return entry.answer
    }

    /// Caches `answer` for its lifetime from when it was received (nothing if that is zero or
    /// already past), replacing any older answer for `key`; when full, the least recently used
    /// entry goes.
    mutating func insert(_ key: ForwardKey, _ answer: ForwardedAnswer, now: NIODeadline) {
        let expires = answer.storedAt + .seconds(Int64(answer.lifetime))
        guard answer.lifetime > 0, now < expires else { return }
        if let slot = index[key] {
            slots[slot]!.answer = answer
            slots[slot]!.expires = expires
            touch(slot)
            return
        }
        if index.count >= capacity, oldest >= 0 {
            remove(oldest)
            evictions += 1
        }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = slots.count
            slots.append(nil)
        }
        slots[slot] = Slot(key: key, answer: answer, expires: expires, newer: -1, older: -1)
        index[key] = slot
        linkAsNewest(slot)
    }

    /// Drops every entry.
    mutating func removeAll() {
        self = AnswerCache(capacity: capacity)
    }

    /// Keys from most to least recently used (for tests).
    var keysByRecency: [ForwardKey] {
        var keys: [ForwardKey] = []
        var slot = newest
        while slot >= 0, let entry = slots[slot] {
            keys.append(entry.key)
            slot = entry.older
        }
        return keys
    }

    private mutating func remove(_ slot: Int) {
        guard let entry = slots[slot] else { return }
        unlink(slot)
        index[entry.key] = nil
        slots[slot] = nil
        freeSlots.append(slot)
    }

    private mutating func touch(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        linkAsNewest(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let newer = slots[slot]!.newer, older = slots[slot]!.older
        if newer >= 0 { slots[newer]!.older = older } else { newest = older }
        if older >= 0 { slots[older]!.newer = newer } else { oldest = newer }
        slots[slot]!.newer = -1
        slots[slot]!.older = -1
    }

    private mutating func linkAsNewest(_ slot: Int) {
        slots[slot]!.older = newest
        slots[slot]!.newer = -1
        if newest >= 0 { slots[newest]!.newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}
