import NIOCore

/// An upstream's answer to one question, kept as the bytes it sent so that serving it is a copy
/// and a few patches: the client's ID, flags and question, TTLs aged by the time spent here,
/// and our own OPT record.
///
/// Made by `UpstreamMessage.read`, which checked every record's bounds. The bytes run from the
/// header to the end of the last record kept: the upstream's OPT record (and anything after
/// it, such as a TSIG) is cut off. Compression pointers only point backwards, and the client's
/// question has the same length as the stored one (the same name, perhaps in other case), so
/// every offset in the kept records stays valid when the question is swapped.
/// Immutable, hence `Sendable`; shared by the cache and every client it is served to.
public final class ForwardedAnswer: Sendable {
    let message: [UInt8]
    let questionEnd: Int
    /// The upstream's header flags (RA, AD and the rcode's low four bits are used).
    let flags: UInt16
    let rcode: RCode
    let answerCount: Int
    let authorityCount: Int
    /// Where the answer and authority sections end.
    let authorityEnd: Int
    /// Where each kept additional record ends: a response too large for the client keeps the
    /// longest prefix of them that fits.
    let additionalEnds: [Int]
    /// Offsets of every kept record's TTL field, and the TTL to serve there when fresh
    /// (the record's TTL capped by `maxTTL`; for a negative answer's SOA, the negative TTL).
    let ttlOffsets: [Int]
    let ttlBases: [UInt32]
    /// Seconds this answer may be cached; 0: not at all.
    let lifetime: UInt32
    /// When it was received: TTLs are served minus the whole seconds since.
    let storedAt: NIODeadline

    init(
        message: [UInt8], questionEnd: Int, flags: UInt16, rcode: RCode, answerCount: Int, authorityCount: Int,
        authorityEnd: Int, additionalEnds: [Int], ttlOffsets: [Int], ttlBases: [UInt32], lifetime: UInt32,
        storedAt: NIODeadline
    ) {
        self.message = message
        self.questionEnd = questionEnd
        self.flags = flags
        self.rcode = rcode
        self.answerCount = answerCount
        self.authorityCount = authorityCount
        self.authorityEnd = authorityEnd
        self.additionalEnds = additionalEnds
        self.ttlOffsets = ttlOffsets
        self.ttlBases = ttlBases
        self.lifetime = lifetime
        self.storedAt = storedAt
    }

    /// A negative answer: NXDOMAIN, or NOERROR with an empty answer section (NODATA).
    var isNegative: Bool { rcode == .nxDomain || answerCount == 0 }

    /// Whole seconds between `storedAt` and `now` (0 if `now` is earlier).
    func age(at now: NIODeadline) -> UInt32 {
        let nanoseconds = (now - storedAt).nanoseconds
        return nanoseconds <= 0 ? 0 : UInt32(clamping: nanoseconds / 1_000_000_000)
    }

    /// The TTLs a client would be served at `now`, in record order (for tests and logs).
    func servedTTLs(at now: NIODeadline) -> [UInt32] {
        let age = age(at: now)
        return ttlBases.map { $0 > age ? $0 - age : 0 }
    }

    /// Appends the response to a client's query: its ID, its question bytes (`question`: the
    /// query's bytes 12..<questionEnd, case as asked), opcode, RD and CD from its flags; RA
    /// from the upstream; AD from the upstream only for a client that sent DO or AD (RFC 6840
    /// section 5.8); AA clear (a forwarded answer is not authoritative); TTLs aged to `now`.
    ///
    /// With `edns` (the client sent OPT) the response ends in an OPT advertising 1232 bytes and
    /// echoing DO; without, it has none. Larger than `limit`: additional records are left out
    /// from the end until it fits; if the answer and authority sections alone do not fit, TC is
    /// set and only the question (and OPT) go (RFC 2181 section 9).
    func write(
        id: UInt16, clientFlags: UInt16, question: UnsafeRawBufferPointer, edns: EDNSOptions?, now: NIODeadline,
        limit: Int, into out: inout ByteBuffer
    ) {
        var flags = HeaderFlags.qr | (clientFlags & (HeaderFlags.opcodeMask | HeaderFlags.rd | HeaderFlags.cd))
        flags |= self.flags & HeaderFlags.ra
        if self.flags & HeaderFlags.ad != 0, edns?.dnssecOK == true || clientFlags & HeaderFlags.ad != 0 {
            flags |= HeaderFlags.ad
        }
        flags |= rcode.rawValue & 0x000F
        let reserve = edns == nil ? 0 : 11
        let truncated = authorityEnd + reserve > limit
        if truncated { flags |= HeaderFlags.tc }
        var kept = 0
        if !truncated {
            while kept < additionalEnds.count, additionalEnds[kept] + reserve <= limit { kept += 1 }
        }
        let end = truncated ? questionEnd : (kept > 0 ? additionalEnds[kept - 1] : authorityEnd)

        let start = out.writerIndex
        out.writeInteger(id)
        out.writeInteger(flags)
        out.writeInteger(UInt16(1))
        out.writeInteger(UInt16(truncated ? 0 : answerCount))
        out.writeInteger(UInt16(truncated ? 0 : authorityCount))
        out.writeInteger(UInt16(kept + (edns == nil ? 0 : 1)))
        message.withUnsafeBytes { stored in
            // The client's question has the stored one's length (same name and type, see
            // `UpstreamMessage.read`); should a caller pass another, the stored one is used.
            if question.count == questionEnd - 12 {
                out.writeBytes(question)
            } else {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: stored[12..<questionEnd]))
            }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: stored[questionEnd..<end]))
        }
        if !truncated {
            let age = age(at: now)
            for (offset, base) in zip(ttlOffsets, ttlBases) where offset < end {
                out.setInteger(base > age ? base - age : 0, at: start + offset)
            }
        }
        if let edns {
            out.writeInteger(UInt8(0))
            out.writeInteger(RRType.opt.rawValue)
            out.writeInteger(EDNS.advertisedPayloadSize)
            out.writeInteger(edns.dnssecOK ? EDNS.dnssecOK : 0)
            out.writeInteger(UInt16(0))
        }
    }

    /// `write` for a parsed client query and the message it came in.
    func write(to query: Query, message: UnsafeRawBufferPointer, now: NIODeadline, limit: Int, into out: inout ByteBuffer) {
        let questionEnd = min(query.questionEnd, message.count)
        write(
            id: query.id, clientFlags: query.flags, question: UnsafeRawBufferPointer(rebasing: message[min(12, questionEnd)..<questionEnd]),
            edns: query.edns, now: now, limit: limit, into: &out)
    }
}

/// How long forwarded answers may be cached (RFC 1035 section 7.1, RFC 2308).
public enum CachePolicy {
    /// RFC 2181 section 8: a TTL with the top bit set is taken as zero.
    public static func normalized(_ ttl: UInt32) -> UInt32 { ttl & 0x8000_0000 != 0 ? 0 : ttl }

    /// The negative-caching TTL of RFC 2308 section 5: the lesser of the SOA record's own TTL
    /// and its MINIMUM field.
    public static func negativeTTL(soaTTL: UInt32, soaMinimum: UInt32) -> UInt32 {
        min(normalized(soaTTL), normalized(soaMinimum))
    }

    /// Seconds an answer may stay in the cache; 0 means not cached.
    ///
    /// - NOERROR with records in the answer section: the least TTL among them, capped by `maxTTL`;
    ///   with a SOA in the authority section too (NODATA at the end of a CNAME chain), also by
    ///   the negative TTL.
    /// - NXDOMAIN, or NOERROR with an empty answer section (NODATA): the negative TTL from the SOA
    ///   in the authority section, also capped by `maxTTL` (and by any answer TTL, as when a
    ///   CNAME leads to a name that does not exist). No SOA: not cached (RFC 2308 section 5),
    ///   which also keeps referrals out of the cache.
    /// - Any other rcode (SERVFAIL among them): not cached.
    public static func lifetime(rcode: RCode, answerTTLs: [UInt32], soa: (ttl: UInt32, minimum: UInt32)?, maxTTL: UInt32) -> UInt32 {
        let leastAnswerTTL = answerTTLs.map(normalized).min()
        switch rcode {
        case .noError where leastAnswerTTL != nil:
            return min(leastAnswerTTL!, soa.map { negativeTTL(soaTTL: $0.ttl, soaMinimum: $0.minimum) } ?? .max, maxTTL)
        case .noError, .nxDomain:
            guard let soa else { return 0 }
            return min(negativeTTL(soaTTL: soa.ttl, soaMinimum: soa.minimum), leastAnswerTTL ?? .max, maxTTL)
        default:
            return 0
        }
    }
}
