import NIOCore
import ZoneLinkCore

/// Response-rate limiting (RRL) of UDP answers, the way NSD and Knot do it.
///
/// A spoofed query makes ZoneLink send its answer to the victim whose address was forged,
/// about fourteen times larger with EDNS: an amplifier. RRL counts answers per source prefix
/// (`ipv4PrefixLength`) and response class (`ResponseClass`: the same name and type, NXDOMAIN
/// in one zone, errors) with a token bucket of `responsesPerSecond`, one second deep. Past it,
/// answers are dropped, except every `slip`-th, sent truncated (TC=1, no records): a real
/// client retries over TCP and is answered there, a forged source gets nothing bigger than
/// the query.
///
/// Pure: time is passed in, nothing is sent. Memory is fixed at `capacity` buckets chosen by
/// a hash with a per-table random seed (so a client cannot aim at another's bucket); two keys
/// that meet in a bucket take it over in turn, which only ever lets answers through. Not
/// `Sendable`: one table per UDP worker thread.
public struct ResponseRateLimiter {
    public enum Decision: Equatable, Sendable {
        /// Within the limit: send the answer.
        case send
        /// Over the limit, but this one goes out truncated (TC=1), so that a real client moves to TCP.
        case slip
        /// Over the limit: send nothing.
        case drop
    }

    private struct Bucket {
        /// The class and prefix this bucket counts for (0: unused).
        var key: UInt64 = 0
        /// Nanoseconds of sending time saved up, at most one second's worth.
        var credit: Int64 = 0
        /// When `credit` was last brought up to date, in nanoseconds since the caller's origin.
        var stamp: Int64 = 0
        /// Answers limited since the bucket was last within its limit, for `slip`.
        var limited: UInt32 = 0
    }

    public let settings: DNSRateLimit
    private var buckets: [Bucket]
    private let mask: Int
    private let seed: UInt64
    /// Credit one answer costs: a second divided by `responsesPerSecond`.
    private let cost: Int64
    private static let second: Int64 = 1_000_000_000

    /// A table of `capacity` buckets (rounded up to a power of two).
    public init(settings: DNSRateLimit, capacity: Int = 16_384, seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        self.settings = settings
        var size = 1
        while size < max(1, capacity) { size <<= 1 }
        self.buckets = Array(repeating: Bucket(), count: size)
        self.mask = size - 1
        self.seed = seed
        self.cost = settings.responsesPerSecond > 0 ? Self.second / Int64(settings.responsesPerSecond) : 0
    }

    /// Buckets in the table: its memory, which never grows.
    public var capacity: Int { buckets.count }

    /// Decides for one answer, `response` (a whole DNS message), to `source` at `now` (time
    /// since any fixed origin, never going back).
    /// Classifies and hashes in place: nothing is allocated per answer.
    public mutating func decide(_ response: UnsafeRawBufferPointer, to source: IPv4Address, at now: Duration) -> Decision {
        guard cost > 0 else { return .send }
        let length = settings.ipv4PrefixLength
        let prefix = length == 0 ? 0 : source.value & (UInt32.max << (32 - UInt32(length)))
        var key = ResponseClass.hash(of: response, seed: seed ^ (UInt64(prefix) &* 0x9E37_79B9_7F4A_7C15))
        if key == 0 { key = 1 }
        let (seconds, attoseconds) = now.components
        let nanos = seconds &* Self.second &+ attoseconds / 1_000_000_000
        let index = Int(truncatingIfNeeded: key) & mask
        if buckets[index].key != key {
            buckets[index] = Bucket(key: key, credit: Self.second, stamp: nanos, limited: 0)
        }
        let elapsed = max(0, nanos - buckets[index].stamp)
        buckets[index].credit = min(Self.second, buckets[index].credit + min(elapsed, Self.second))
        buckets[index].stamp = nanos
        if buckets[index].credit >= cost {
            buckets[index].credit -= cost
            buckets[index].limited = 0
            return .send
        }
        buckets[index].limited &+= 1
        let slip = UInt32(settings.slip)
        return slip > 0 && buckets[index].limited % slip == 0 ? .slip : .drop
    }

    /// Cuts the response in `buffer` (from its reader index) down to its header and question
    /// with TC=1: what a slipped answer carries. A response without a readable question keeps
    /// its header only.
    public static func truncate(_ buffer: inout ByteBuffer) {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= 12 else { return }
        let questionEnd: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard bytes[4] == 0, bytes[5] == 1, let nameEnd = ResponseClass.skipName(bytes, at: 12), nameEnd + 4 <= bytes.count
            else { return nil }
            return nameEnd + 4
        }
        let end = questionEnd ?? 12
        buffer.moveWriterIndex(to: start + end)
        if questionEnd == nil { buffer.setInteger(UInt16(0), at: start + 4) }
        buffer.setInteger(buffer.getInteger(at: start + 2, as: UInt8.self)! | 0x02, at: start + 2)  // TC
        for offset in [6, 8, 10] { buffer.setInteger(UInt16(0), at: start + offset) }
    }
}

/// What RRL counts answers by (NSD's and Knot's classes, reduced to what ZoneLink answers):
/// answers and NODATA by question name and type, NXDOMAIN by the zone that denies (the owner
/// of the SOA in authority), so that random names under one zone share a bucket, and every
/// error (FORMERR, SERVFAIL, NOTIMP, REFUSED) in one class. Names count in lower case and
/// uncompressed (pointers followed).
public enum ResponseClass: Equatable, Sendable {
    case answer(name: [UInt8], type: UInt16)
    case nxdomain(zone: [UInt8])
    case error

    /// Where in a response its class is written: offsets only, nothing copied.
    private enum Location {
        case answer(name: Int, type: Int)
        /// The zone's name (nil: no authority record to name it).
        case nxdomain(zone: Int?)
        case error
    }

    /// The class of a response (a whole DNS message).
    public static func of(_ response: UnsafeRawBufferPointer) -> ResponseClass {
        func name(at offset: Int) -> [UInt8] {
            var wire: [UInt8] = []
            _ = visitName(response, at: offset) { wire.append($0) }
            return wire
        }
        switch locate(response) {
        case .answer(let nameAt, let typeAt):
            return .answer(name: name(at: nameAt), type: UInt16(response[typeAt]) << 8 | UInt16(response[typeAt + 1]))
        case .nxdomain(let zoneAt):
            return .nxdomain(zone: zoneAt.map { name(at: $0) } ?? [])
        case .error:
            return .error
        }
    }

    /// The hash `of(response).hash(seed:)` gives, read in place (the UDP workers' way).
    static func hash(of response: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var hasher = ClassHasher(seed: seed)
        switch locate(response) {
        case .answer(let nameAt, let typeAt):
            hasher.mix(1)
            _ = visitName(response, at: nameAt) { hasher.mix($0) }
            hasher.mix(response[typeAt])
            hasher.mix(response[typeAt + 1])
        case .nxdomain(let zoneAt):
            hasher.mix(2)
            if let zoneAt { _ = visitName(response, at: zoneAt) { hasher.mix($0) } }
        case .error:
            hasher.mix(3)
        }
        return hasher.value
    }

    /// A 64-bit hash of the class, mixed with `seed` (the table's seed and the source prefix).
    func hash(seed: UInt64) -> UInt64 {
        var hasher = ClassHasher(seed: seed)
        switch self {
        case .answer(let name, let type):
            hasher.mix(1)
            name.forEach { hasher.mix($0) }
            hasher.mix(UInt8(type >> 8))
            hasher.mix(UInt8(type & 0xFF))
        case .nxdomain(let zone):
            hasher.mix(2)
            zone.forEach { hasher.mix($0) }
        case .error:
            hasher.mix(3)
        }
        return hasher.value
    }

    private static func locate(_ response: UnsafeRawBufferPointer) -> Location {
        guard response.count >= 12 else { return .error }
        let rcode = response[3] & 0x0F
        let questions = Int(response[4]) << 8 | Int(response[5])
        guard rcode == 0 || rcode == 3, questions == 1, let nameEnd = skipName(response, at: 12), nameEnd + 4 <= response.count,
              visitName(response, at: 12, { _ in }) != nil
        else { return .error }
        guard rcode == 3 else { return .answer(name: 12, type: nameEnd) }
        var offset = nameEnd + 4
        let answers = Int(response[6]) << 8 | Int(response[7])
        let authority = Int(response[8]) << 8 | Int(response[9])
        for _ in 0..<answers {
            guard let end = skipRecord(response, at: offset) else { return .nxdomain(zone: nil) }
            offset = end
        }
        guard authority > 0, visitName(response, at: offset, { _ in }) != nil else { return .nxdomain(zone: nil) }
        return .nxdomain(zone: offset)
    }

    /// Hands each byte of the name at `offset` to `byte`, lower case and uncompressed (the
    /// root's zero included), and returns where the name ends in place; nil when malformed
    /// (then some bytes may have been handed on).
    static func visitName(_ bytes: UnsafeRawBufferPointer, at offset: Int, _ byte: (UInt8) -> Void) -> Int? {
        var position = offset
        var end: Int?
        var jumps = 0
        var length = 0
        while position < bytes.count {
            let label = Int(bytes[position])
            if label == 0 {
                byte(0)
                return end ?? position + 1
            }
            if label & 0xC0 == 0xC0 {
                guard position + 1 < bytes.count, jumps < 16 else { return nil }
                if end == nil { end = position + 2 }
                position = (label & 0x3F) << 8 | Int(bytes[position + 1])
                jumps += 1
                continue
            }
            length += 1 + label
            guard label < 64, position + 1 + label <= bytes.count, length < 255 else { return nil }
            byte(UInt8(label))
            for character in bytes[(position + 1)..<(position + 1 + label)] {
                byte(character >= 0x41 && character <= 0x5A ? character | 0x20 : character)
            }
            position += 1 + label
        }
        return nil
    }

    /// Where the name at `offset` ends in place (after its last label or its pointer).
    static func skipName(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        var position = offset
        while position < bytes.count {
            let length = Int(bytes[position])
            if length == 0 { return position + 1 }
            if length & 0xC0 == 0xC0 { return position + 2 <= bytes.count ? position + 2 : nil }
            guard length < 64 else { return nil }
            position += 1 + length
        }
        return nil
    }

    /// Where the resource record at `offset` ends.
    private static func skipRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard let nameEnd = skipName(bytes, at: offset), nameEnd + 10 <= bytes.count else { return nil }
        let length = Int(bytes[nameEnd + 8]) << 8 | Int(bytes[nameEnd + 9])
        return nameEnd + 10 + length <= bytes.count ? nameEnd + 10 + length : nil
    }
}

/// FNV-1a over a class's bytes from a seed, then a final avalanche so that the low bits that
/// pick a bucket depend on every byte.
private struct ClassHasher {
    private var state: UInt64

    init(seed: UInt64) { state = 0xCBF2_9CE4_8422_2325 ^ seed }

    mutating func mix(_ byte: UInt8) {
        state ^= UInt64(byte)
        state &*= 0x0000_0100_0000_01B3
    }

    var value: UInt64 {
        var hash = state
        hash ^= hash >> 33
        hash &*= 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        return hash
    }
}
