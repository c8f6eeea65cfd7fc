import NIOCore

/// The query the forwarder sends upstream, and how it reads what comes back.
///
/// Upstream data is untrusted: every index is bounds-checked and nothing traps. A datagram that
/// is not a well-formed answer to exactly the query sent (ID, QR, opcode, the one question:
/// name case-insensitively, type, class) is ignored, and the forwarder keeps waiting.
enum UpstreamMessage {
    static let tsig = RRType(rawValue: 250)

    /// A recursive query (RD) for `key` with ID `id`, with an OPT advertising 1232 bytes and
    /// the DO bit of the key. The name goes in lower case, the form the cache keys on.
    static func query(id: UInt16, for key: ForwardKey) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12 + key.name.wire.count + 4 + 11)
        bytes += [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(HeaderFlags.rd >> 8), 0, 0, 1, 0, 0, 0, 0, 0, 1]
        bytes += key.name.wire
        bytes += [UInt8(key.type >> 8), UInt8(key.type & 0xFF), UInt8(key.qclass >> 8), UInt8(key.qclass & 0xFF)]
        let size = EDNS.advertisedPayloadSize
        bytes += [0, 0, UInt8(RRType.opt.rawValue), UInt8(size >> 8), UInt8(size & 0xFF), 0, 0, key.dnssecOK ? 0x80 : 0, 0, 0, 0]
        return bytes
    }

    enum Reading {
        /// Not an answer to this query, or unreadable: ignore it, keep waiting.
        case ignored
        /// An answer to this query with TC set, over UDP: ask again over TCP.
        case truncated
        /// An answer to this query that is of no use to the client (SERVFAIL, REFUSED, FORMERR,
        /// NOTIMP, an extended rcode, TC over TCP): try the next upstream.
        case unusable(String)
        case answer(ForwardedAnswer)
    }

    /// Reads `bytes` as the response to the query with `id` for `key`.
    static func read(
        _ bytes: UnsafeRawBufferPointer, id: UInt16, key: ForwardKey, overTCP: Bool, maxTTL: UInt32, now: NIODeadline
    ) -> Reading {
        let count = bytes.count
        guard count >= QueryParser.headerLength, QueryParser.read16(bytes, 0) == id else { return .ignored }
        let flags = QueryParser.read16(bytes, 2)
        guard flags & HeaderFlags.qr != 0, flags & HeaderFlags.opcodeMask == 0, QueryParser.read16(bytes, 4) == 1 else {
            return .ignored
        }
        // The question: plain labels equal to the key's name, ignoring case.
        let wire = key.name.wire
        guard count >= 12 + wire.count + 4 else { return .ignored }
        for i in 0..<wire.count where DNSName.lower(bytes[12 + i]) != wire[i] { return .ignored }
        let nameEnd = 12 + wire.count
        guard QueryParser.read16(bytes, nameEnd) == key.type, QueryParser.read16(bytes, nameEnd + 2) == key.qclass else {
            return .ignored
        }
        let questionEnd = nameEnd + 4
        // A truncated answer may be cut anywhere after the question: not read further.
        if flags & HeaderFlags.tc != 0 {
            return overTCP ? .unusable("TC set over TCP") : .truncated
        }

        let answerCount = Int(QueryParser.read16(bytes, 6))
        let authorityCount = Int(QueryParser.read16(bytes, 8))
        let additionalCount = Int(QueryParser.read16(bytes, 10))
        var offset = questionEnd
        var authorityEnd = questionEnd
        var additionalEnds: [Int] = []
        var ttlOffsets: [Int] = []
        var ttlBases: [UInt32] = []
        var answerTTLs: [UInt32] = []
        var soa: (ttl: UInt32, minimum: UInt32, index: Int)?
        var extendedRcode: UInt16 = 0
        var cut = false
        for record in 0..<(answerCount + authorityCount + additionalCount) {
            guard let ownerEnd = QueryParser.skipName(bytes, at: offset), ownerEnd + 10 <= count else { return .ignored }
            let type = RRType(rawValue: QueryParser.read16(bytes, ownerEnd))
            let rawTTL = read32(bytes, ownerEnd + 4)
            let rdlength = Int(QueryParser.read16(bytes, ownerEnd + 8))
            let end = ownerEnd + 10 + rdlength
            guard end <= count else { return .ignored }
            defer { offset = end }
            let inAdditional = record >= answerCount + authorityCount
            if type == .opt || type == tsig {
                // Meta records belong in the additional section only (RFC 6891, RFC 8945).
                guard inAdditional else { return .ignored }
                if type == .opt && !cut { extendedRcode = UInt16(rawTTL >> 24) }
                // Ours replaces the OPT; a TSIG would not verify after rewriting; what follows
                // them is cut too, so that no kept offset moves.
                cut = true
                continue
            }
            if cut { continue }
            let ttl = CachePolicy.normalized(rawTTL)
            if record < answerCount {
                answerTTLs.append(ttl)
            } else if !inAdditional, type == .soa, soa == nil, rdlength >= 22 {
                // Two names of at least one byte each, then five 32-bit fields; MINIMUM is last.
                soa = (ttl, read32(bytes, end - 4), ttlOffsets.count)
            }
            ttlOffsets.append(ownerEnd + 4)
            ttlBases.append(min(ttl, maxTTL))
            if inAdditional { additionalEnds.append(end) } else { authorityEnd = end }
        }

        let rcode = RCode(rawValue: extendedRcode << 4 | flags & 0x000F)
        guard rcode == .noError || rcode == .nxDomain else { return .unusable("\(rcode)") }
        let lifetime = CachePolicy.lifetime(
            rcode: rcode, answerTTLs: answerTTLs, soa: soa.map { ($0.ttl, $0.minimum) }, maxTTL: maxTTL)
        if let soa {
            // The SOA of a negative answer is served with the negative TTL (RFC 2308 section 3).
            ttlBases[soa.index] = min(ttlBases[soa.index], CachePolicy.negativeTTL(soaTTL: soa.ttl, soaMinimum: soa.minimum))
        }
        let end = additionalEnds.last ?? authorityEnd
        return .answer(ForwardedAnswer(
            message: Array(bytes[0..<end]), questionEnd: questionEnd, flags: flags, rcode: rcode,
            answerCount: answerCount, authorityCount: authorityCount, authorityEnd: authorityEnd,
            additionalEnds: additionalEnds, ttlOffsets: ttlOffsets, ttlBases: ttlBases, lifetime: lifetime, storedAt: now))
    }

    @inline(__always)
    static func read32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(QueryParser.read16(bytes, offset)) << 16 | UInt32(QueryParser.read16(bytes, offset + 2))
    }
}
