// A PROXY protocol v2 decoder for the tests, written from the haproxy.org spec
// (proxy-protocol.txt, section 2.2) and independently of the gateway's encoder, so that a
// mistake in one is not mirrored by the other. Only what the tests need: v2, LOCAL or PROXY,
// TCP or UDP over IPv4, the TLV list, and ZoneLink's and AWS's TLVs by subtype.

/// One decoded PROXY v2 header.
public struct ProxyV2Header: Equatable, Sendable, CustomStringConvertible {
    public enum Command: Equatable, Sendable { case local, proxy }

    public struct TLV: Equatable, Sendable {
        public var type: UInt8
        public var value: [UInt8]
    }

    public var command: Command
    /// The family/transport byte (0x11 TCP over IPv4, 0x12 UDP over IPv4, 0x00 UNSPEC).
    public var family: UInt8
    /// "a.b.c.d:port"; nil for LOCAL or UNSPEC.
    public var source: String?
    public var destination: String?
    public var tlvs: [TLV]
    /// Bytes the header took on the wire (16 + its length field).
    public var length: Int

    public init(command: Command, family: UInt8, source: String?, destination: String?, tlvs: [TLV], length: Int) {
        self.command = command
        self.family = family
        self.source = source
        self.destination = destination
        self.tlvs = tlvs
        self.length = length
    }

    /// The ASCII value of the first TLV of `type` whose first value byte is `subtype`.
    public func value(type: UInt8, subtype: UInt8) -> String? {
        tlvs.first { $0.type == type && $0.value.first == subtype }.map { String(decoding: $0.value.dropFirst(), as: UTF8.self) }
    }

    /// The endpoint ID of the AWS TLV (0xEA, subtype 0x01).
    public var endpointID: String? { value(type: 0xEA, subtype: 0x01) }
    /// ZoneLink's TLV (0xE0) subtypes.
    public var consumerVPC: String? { value(type: 0xE0, subtype: 0x01) }
    public var consumerAccount: String? { value(type: 0xE0, subtype: 0x02) }
    public var zone: String? { value(type: 0xE0, subtype: 0x03) }

    public var description: String {
        "\(command) family 0x\(String(family, radix: 16)) \(source ?? "-") -> \(destination ?? "-") endpoint \(endpointID ?? "-") vpc \(consumerVPC ?? "-") account \(consumerAccount ?? "-") zone \(zone ?? "-") (\(tlvs.count) TLVs, \(length) bytes)"
    }
}

public enum ProxyV2Decoder {
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    public enum Outcome: Equatable, Sendable {
        /// A whole header.
        case header(ProxyV2Header)
        /// What is there so far may still become a header: read more.
        case incomplete
        /// Not a v2 header, or a malformed one (why).
        case invalid(String)
    }

    /// Decodes the header at the start of `bytes` (bytes after it are ignored).
    public static func decode(_ bytes: [UInt8]) -> Outcome {
        let prefix = min(bytes.count, 12)
        guard Array(bytes[..<prefix]) == Array(signature[..<prefix]) else { return .invalid("no v2 signature") }
        guard bytes.count >= 16 else { return .incomplete }
        let versionCommand = bytes[12]
        guard versionCommand >> 4 == 2 else { return .invalid("version \(versionCommand >> 4)") }
        let command: ProxyV2Header.Command
        switch versionCommand & 0x0F {
        case 0: command = .local
        case 1: command = .proxy
        default: return .invalid("command \(versionCommand & 0x0F)")
        }
        let family = bytes[13]
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard bytes.count >= 16 + length else { return .incomplete }
        let body = Array(bytes[16..<(16 + length)])
        var header = ProxyV2Header(command: command, family: family, source: nil, destination: nil, tlvs: [], length: 16 + length)
        var offset = 0
        if family >> 4 == 1 {  // AF_INET: 4 + 4 + 2 + 2
            guard body.count >= 12 else { return .invalid("IPv4 addresses need 12 bytes, the header has \(body.count)") }
            func address(_ at: Int) -> String { body[at..<(at + 4)].map(String.init).joined(separator: ".") }
            func port(_ at: Int) -> Int { Int(body[at]) << 8 | Int(body[at + 1]) }
            header.source = "\(address(0)):\(port(8))"
            header.destination = "\(address(4)):\(port(10))"
            offset = 12
        } else if family != 0 {
            return .invalid("family 0x\(String(family, radix: 16)) is not handled by this decoder")
        }
        if command == .local { return .header(header) }
        while offset < body.count {
            guard offset + 3 <= body.count else { return .invalid("a TLV header cut at byte \(offset)") }
            let type = body[offset]
            let valueLength = Int(body[offset + 1]) << 8 | Int(body[offset + 2])
            guard offset + 3 + valueLength <= body.count else { return .invalid("TLV 0x\(String(type, radix: 16)) runs past the header") }
            header.tlvs.append(.init(type: type, value: Array(body[(offset + 3)..<(offset + 3 + valueLength)])))
            offset += 3 + valueLength
        }
        return .header(header)
    }
}
