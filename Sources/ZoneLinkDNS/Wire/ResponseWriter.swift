import NIOCore

/// Encodes a decided `Answer` as a response to a query, within a size limit.
///
/// Deciding and encoding are separate (as in NSD): the writer never changes what is said,
/// only whether it fits. When the answer or authority section does not fit, the response
/// carries the question alone with TC set (RFC 2181 section 9), and the client retries over
/// TCP; additional records that do not fit are simply left out.
public struct ResponseWriter {
    private let start: Int
    private let limit: Int
    /// The question name, at offset 12: most owners are this name, so it is checked first.
    private var questionName: DNSName?
    /// Other names written so far, for compression (RFC 1035 section 4.1.4): where each suffix
    /// starts. Empty (no allocation) for answers that only repeat the question name.
    private var written: [(offset: Int, name: DNSName, from: Int)] = []

    /// Writes the response for `answer` into `buffer` (appending) and returns it.
    /// `message` is the query as received; its question is echoed byte for byte.
    public static func write(
        _ answer: Answer, to query: Query, message: UnsafeRawBufferPointer, limit: Int,
        into buffer: inout ByteBuffer
    ) {
        var writer = ResponseWriter(start: buffer.writerIndex, limit: limit)
        writer.encode(answer, query: query, message: message, into: &buffer)
    }

    /// A response with no records: FORMERR, NOTIMP, REFUSED and the like. The question is
    /// echoed when it could be read.
    public static func writeError(
        _ rcode: RCode, id: UInt16, flags: UInt16, query: Query?, message: UnsafeRawBufferPointer,
        into buffer: inout ByteBuffer
    ) {
        let writer = ResponseWriter(start: buffer.writerIndex, limit: 65535)
        writer.encodeHeader(id: id, queryFlags: flags, rcode: rcode, authoritative: false, into: &buffer)
        if let query {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: message[12..<query.questionEnd]))
            writer.setCount(at: 4, 1, in: &buffer)
            if let edns = query.edns {
                writer.writeOPT(rcode: rcode, dnssecOK: edns.dnssecOK, clientSubnet: edns.clientSubnet, into: &buffer)
                writer.setCount(at: 10, 1, in: &buffer)
            }
        }
    }

    private init(start: Int, limit: Int) {
        self.start = start
        self.limit = limit
    }

    private mutating func encode(_ answer: Answer, query: Query, message: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        encodeHeader(id: query.id, queryFlags: query.flags, rcode: answer.rcode, authoritative: answer.authoritative, into: &buffer)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: message[12..<query.questionEnd]))
        setCount(at: 4, 1, in: &buffer)
        questionName = query.name
        let questionEnd = buffer.writerIndex
        // Room kept for the OPT record (11 bytes), which must go out whatever else does not.
        let reserve = query.edns == nil ? 0 : 11 + (query.edns?.clientSubnet.map { 8 + $0.address.count } ?? 0)

        var fits = true
        var counts = (0, 0, 0)
        for set in answer.answer where fits {
            fits = writeRecordSet(set, limit: limit - reserve, count: &counts.0, into: &buffer)
        }
        for set in answer.authority where fits {
            fits = writeRecordSet(set, limit: limit - reserve, count: &counts.1, into: &buffer)
        }
        if !fits {
            buffer.moveWriterIndex(to: questionEnd)
            counts = (0, 0, 0)
            setFlag(HeaderFlags.tc, in: &buffer)
        } else {
            for set in answer.additional {
                let mark = buffer.writerIndex
                var added = 0
                if !writeRecordSet(set, limit: limit - reserve, count: &added, into: &buffer) {
                    buffer.moveWriterIndex(to: mark)
                    break
                }
                counts.2 += added
            }
        }
        if let edns = query.edns {
            var subnet = edns.clientSubnet
            subnet?.scopePrefix = answer.clientSubnetScope
            writeOPT(rcode: answer.rcode, dnssecOK: edns.dnssecOK, clientSubnet: subnet, into: &buffer)
            counts.2 += 1
        }
        setCount(at: 6, counts.0, in: &buffer)
        setCount(at: 8, counts.1, in: &buffer)
        setCount(at: 10, counts.2, in: &buffer)
    }

    private func encodeHeader(id: UInt16, queryFlags: UInt16, rcode: RCode, authoritative: Bool, into buffer: inout ByteBuffer) {
        // Echo opcode, RD and CD (RFC 6840 section 5.9); RA clear: ZoneLink offers no recursion yet.
        var flags = HeaderFlags.qr | (queryFlags & (HeaderFlags.opcodeMask | HeaderFlags.rd | HeaderFlags.cd))
        if authoritative { flags |= HeaderFlags.aa }
        flags |= rcode.rawValue & 0x000F
        buffer.writeInteger(id)
        buffer.writeInteger(flags)
        buffer.writeInteger(UInt64(0))
    }

    private func setFlag(_ flag: UInt16, in buffer: inout ByteBuffer) {
        let flags: UInt16 = buffer.getInteger(at: start + 2)!
        buffer.setInteger(flags | flag, at: start + 2)
    }

    private func setCount(at offset: Int, _ count: Int, in buffer: inout ByteBuffer) {
        buffer.setInteger(UInt16(count), at: start + offset)
    }

    /// OPT (RFC 6891 section 6.1.2): the upper 8 bits of an extended rcode go in its TTL.
    private func writeOPT(rcode: RCode, dnssecOK: Bool, clientSubnet: ClientSubnet?, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(RRType.opt.rawValue)
        buffer.writeInteger(EDNS.advertisedPayloadSize)
        let ttl = UInt32(rcode.rawValue >> 4) << 24 | (dnssecOK ? EDNS.dnssecOK : 0)
        buffer.writeInteger(ttl)
        guard let subnet = clientSubnet else {
            buffer.writeInteger(UInt16(0))
            return
        }
        // RFC 7871 section 7.2.2: the option comes back with the scope the answer depended on.
        buffer.writeInteger(UInt16(8 + subnet.address.count))
        buffer.writeInteger(ClientSubnet.optionCode)
        buffer.writeInteger(UInt16(4 + subnet.address.count))
        buffer.writeInteger(subnet.family)
        buffer.writeInteger(subnet.sourcePrefix)
        buffer.writeInteger(subnet.scopePrefix)
        buffer.writeBytes(subnet.address)
    }

    /// Writes every record of `set`; false (with the partial write left for the caller to
    /// undo) when it would pass `limit`.
    private mutating func writeRecordSet(_ set: RecordSet, limit: Int, count: inout Int, into buffer: inout ByteBuffer) -> Bool {
        for data in set.records {
            writeName(set.owner, into: &buffer)
            buffer.writeInteger(set.rrset.type.rawValue)
            buffer.writeInteger(DNSClass.internet)
            buffer.writeInteger(set.rrset.ttl)
            buffer.writeInteger(UInt16(data.count))
            buffer.writeBytes(data)
            guard buffer.writerIndex - start <= limit else { return false }
            count += 1
        }
        return true
    }

    /// Writes `name`, replacing its longest suffix already in the message by a pointer.
    private mutating func writeName(_ name: DNSName, into buffer: inout ByteBuffer) {
        if name == questionName {
            buffer.writeInteger(UInt16(0xC000 | 12))
            return
        }
        let wire = name.wire
        var from = 0
        while wire[from] != 0 {
            if let target = pointer(to: wire, from: from) {
                buffer.writeInteger(UInt16(0xC000) | UInt16(target))
                return
            }
            let offset = buffer.writerIndex - start
            let labelEnd = from + Int(wire[from]) + 1
            buffer.writeBytes(wire[from..<labelEnd])
            if offset < 0x4000 { written.append((offset, name, from)) }
            from = labelEnd
        }
        buffer.writeInteger(UInt8(0))
    }

    private func pointer(to wire: [UInt8], from: Int) -> Int? {
        let suffixLength = wire.count - from
        if let question = questionName, question.wire.count >= suffixLength,
           question.wire.count == suffixLength ? from == 0 && question.wire == wire : question.endsWith(DNSName(uncheckedWire: Array(wire[from...]))) {
            // A suffix of the question name: find where it starts inside the question.
            var at = 0
            while question.wire.count - at > suffixLength { at += Int(question.wire[at]) + 1 }
            if question.wire.count - at == suffixLength { return 12 + at }
        }
        for entry in written where entry.name.wire.count - entry.from == suffixLength {
            if entry.name.wire[entry.from...].elementsEqual(wire[from...]) { return entry.offset }
        }
        return nil
    }
}
