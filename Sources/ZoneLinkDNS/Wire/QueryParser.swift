import ZoneLinkCore

/// What an incoming message says, once it is known to be a well-formed query.
public struct Query: Sendable {
    public var id: UInt16
    /// The header's second 16 bits as received (opcode, RD, CD, …).
    public var flags: UInt16
    /// The question name, folded to lower case.
    public var name: DNSName
    public var type: RRType
    public var qclass: UInt16
    /// Bytes 12..<questionEnd of the message are the question as the client wrote it.
    public var questionEnd: Int
    /// Nil when the query had no OPT record.
    public var edns: EDNSOptions?

    public var opcode: UInt8 { UInt8((flags & HeaderFlags.opcodeMask) >> 11) }

    /// The largest UDP response this client accepts (RFC 6891 section 6.2.5).
    public var udpPayloadLimit: Int {
        guard let edns else { return EDNS.minimumPayloadSize }
        return max(EDNS.minimumPayloadSize, min(Int(edns.payloadSize), Int(EDNS.advertisedPayloadSize)))
    }
}

public struct EDNSOptions: Sendable, Equatable {
    public var payloadSize: UInt16
    public var version: UInt8
    public var dnssecOK: Bool
    /// The EDNS Client Subnet option (RFC 7871), when the query carried one.
    public var clientSubnet: ClientSubnet? = nil
}

/// An EDNS Client Subnet option: the network a forwarder's client is in.
public struct ClientSubnet: Sendable, Equatable {
    public static let optionCode: UInt16 = 8

    /// 1 for IPv4, 2 for IPv6 (RFC 7871 section 6, address family numbers).
    public var family: UInt16
    public var sourcePrefix: UInt8
    public var scopePrefix: UInt8
    /// The address, exactly ceil(sourcePrefix / 8) bytes, as sent.
    public var address: [UInt8]

    /// The IPv4 network of the option, for finding the client's vSwitch.
    public var ipv4Network: IPv4Prefix? {
        guard family == 1, sourcePrefix <= 32 else { return nil }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(i < address.count ? address[i] : 0) }
        let length = Int(sourcePrefix)
        let mask: UInt32 = length == 0 ? 0 : UInt32.max << UInt32(32 - length)
        return IPv4Prefix(network: IPv4Address(value & mask), length: length)
    }
}

/// The outcome of reading a datagram or TCP message.
public enum ParsedMessage: Sendable {
    case query(Query)
    /// Answer with `rcode` and no records; `query` holds what could be read of the question.
    case reject(id: UInt16, flags: UInt16, rcode: RCode, query: Query?)
    /// Not worth an answer: shorter than a header, or a response (QR set), which a server
    /// must not answer lest two servers loop.
    case drop
    /// A zone transfer (AXFR, IXFR) or a query signed with TSIG: the transfer responder
    /// reads the whole message (IXFR carries a SOA in authority, TSIG must be last).
    case transfer(Query)
}

/// The TSIG record's type (RFC 8945), which routes a query to the transfer responder.
enum TSIGRecordType {
    static let value: UInt16 = 250
}

/// Reads DNS queries from untrusted bytes. Every index is bounds-checked; nothing is trusted,
/// nothing traps. It reads only what answering needs: header, question, and the OPT record.
public enum QueryParser {
    static let headerLength = 12

    public static func parse(_ bytes: [UInt8]) -> ParsedMessage {
        bytes.withUnsafeBytes { parse($0) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ParsedMessage {
        guard bytes.count >= headerLength else { return .drop }
        let id = read16(bytes, 0)
        let flags = read16(bytes, 2)
        guard flags & HeaderFlags.qr == 0 else { return .drop }
        let qdcount = read16(bytes, 4)
        let ancount = read16(bytes, 6)
        let nscount = read16(bytes, 8)
        let arcount = read16(bytes, 10)
        func reject(_ rcode: RCode, _ query: Query? = nil) -> ParsedMessage {
            .reject(id: id, flags: flags, rcode: rcode, query: query)
        }

        let question = qdcount == 1 ? readQuestionName(bytes, at: headerLength).flatMap { name, nameEnd in
            nameEnd + 4 <= bytes.count ? Query(
                id: id, flags: flags, name: name, type: RRType(rawValue: read16(bytes, nameEnd)),
                qclass: read16(bytes, nameEnd + 2), questionEnd: nameEnd + 4, edns: nil) : nil
        } : nil
        // An opcode other than QUERY is NOTIMP whatever its sections hold (RFC 1035 4.1.1,
        // RFC 6895 2.2): they may mean something else under that opcode, so they are not judged;
        // a readable question is echoed, else the header alone.
        guard flags & HeaderFlags.opcodeMask == 0 else { return reject(.notImp, question) }
        guard var query = question else { return reject(.formErr) }
        if query.type == .axfr || query.type == .ixfr { return .transfer(query) }
        // A query carries nothing in the answer and authority sections (RFC 1035 4.1.1).
        guard ancount == 0, nscount == 0 else { return reject(.formErr, query) }

        var offset = query.questionEnd
        for _ in 0..<arcount {
            guard let ownerEnd = skipName(bytes, at: offset), ownerEnd + 10 <= bytes.count else { return reject(.formErr, query) }
            let type = read16(bytes, ownerEnd)
            let rdlength = Int(read16(bytes, ownerEnd + 8))
            let end = ownerEnd + 10 + rdlength
            guard end <= bytes.count else { return reject(.formErr, query) }
            if type == TSIGRecordType.value { return .transfer(query) }
            if type == RRType.opt.rawValue {
                // One OPT, owned by the root (RFC 6891 section 6.1.1).
                guard query.edns == nil, ownerEnd == offset + 1 else { return reject(.formErr, query) }
                let ttl = UInt32(read16(bytes, ownerEnd + 4)) << 16 | UInt32(read16(bytes, ownerEnd + 6))
                query.edns = EDNSOptions(
                    payloadSize: read16(bytes, ownerEnd + 2), version: UInt8(ttl >> 16 & 0xFF),
                    dnssecOK: ttl & EDNS.dnssecOK != 0)
                guard validOptions(bytes, from: ownerEnd + 10, to: end) else { return reject(.formErr, query) }
                switch clientSubnet(bytes, from: ownerEnd + 10, to: end) {
                case .none: break
                case .some(.none): return reject(.formErr, query)
                case .some(.some(let subnet)): query.edns?.clientSubnet = subnet
                }
            }
            offset = end
        }
        // Meta types cannot be asked for (RFC 6895 section 3.1).
        if query.type == .opt { return reject(.formErr, query) }
        return .query(query)
    }

    @inline(__always)
    static func read16(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    /// The question name: plain labels only. A compression pointer there could only point into
    /// the header, so it is malformed; so are the reserved label types 0x40 and 0x80.
    static func readQuestionName(_ bytes: UnsafeRawBufferPointer, at start: Int) -> (DNSName, Int)? {
        var offset = start
        while true {
            guard offset < bytes.count else { return nil }
            let length = Int(bytes[offset])
            if length == 0 { break }
            guard length <= 63, offset + 1 + length < bytes.count else { return nil }
            offset += length + 1
            guard offset - start < DNSName.maxWireLength else { return nil }
        }
        let end = offset + 1
        return (DNSName(validatedWire: UnsafeRawBufferPointer(rebasing: bytes[start..<end])), end)
    }

    /// The end of a possibly compressed name. A pointer ends the name where it stands, so
    /// skipping needs no loop detection; the pointer's target must still lie inside the message.
    static func skipName(_ bytes: UnsafeRawBufferPointer, at start: Int) -> Int? {
        var offset = start
        while offset < bytes.count {
            let length = Int(bytes[offset])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 { return offset + 1 }
                offset += length + 1
                guard offset - start < DNSName.maxWireLength else { return nil }
            case 0xC0:
                guard offset + 1 < bytes.count else { return nil }
                let target = (length & 0x3F) << 8 | Int(bytes[offset + 1])
                guard target < offset else { return nil }
                return offset + 2
            default:
                return nil
            }
        }
        return nil
    }

    /// The Client Subnet option among the OPT record's options: nil when there is none,
    /// `.some(nil)` when it is malformed (RFC 7871 section 7.1.2: FORMERR).
    static func clientSubnet(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> ClientSubnet?? {
        var offset = start
        while offset + 4 <= end {
            let code = read16(bytes, offset)
            let length = Int(read16(bytes, offset + 2))
            let data = offset + 4
            offset = data + length
            guard code == ClientSubnet.optionCode else { continue }
            guard length >= 4 else { return .some(nil) }
            let family = read16(bytes, data)
            let source = bytes[data + 2], scope = bytes[data + 3]
            let maxPrefix: UInt8 = family == 1 ? 32 : family == 2 ? 128 : 0
            let addressLength = (Int(source) + 7) / 8
            guard maxPrefix > 0, source <= maxPrefix, scope == 0, length == 4 + addressLength else { return .some(nil) }
            let address = Array(UnsafeRawBufferPointer(rebasing: bytes[(data + 4)..<(data + 4 + addressLength)]))
            // Bits beyond the source prefix must be zero.
            if source % 8 != 0, let last = address.last, last & (0xFF >> (source % 8)) != 0 { return .some(nil) }
            return .some(ClientSubnet(family: family, sourcePrefix: source, scopePrefix: 0, address: address))
        }
        return .none
    }

    /// EDNS options are TLVs that must exactly fill the OPT record's data.
    static func validOptions(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Bool {
        var offset = start
        while offset < end {
            guard offset + 4 <= end else { return false }
            offset += 4 + Int(read16(bytes, offset + 2))
        }
        return offset == end
    }
}
