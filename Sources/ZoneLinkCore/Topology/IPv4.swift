/// An IPv4 address as a 32-bit number in host order.
///
/// ZoneLink's topology is IPv4, as the clouds' PrivateLink ENIs are; text parsing is strict
/// (four decimal octets, no leading zeros) so a typo in a config never becomes another address.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init?(_ text: some StringProtocol) {
        var octets = 0
        var current: UInt32 = 0
        var digits = 0
        var result: UInt32 = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits > 0 && current == 0 { return nil }  // leading zero
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if current > 255 || digits > 3 { return nil }
            case UInt8(ascii: "."):
                guard digits > 0, octets < 3 else { return nil }
                result = result << 8 | current
                octets += 1
                current = 0
                digits = 0
            default:
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        self.value = result << 8 | current
    }

    /// The four octets in network order, as they go on the wire and into A records.
    public var octets: (UInt8, UInt8, UInt8, UInt8) {
        (UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF))
    }

    public var description: String {
        let o = octets
        return "\(o.0).\(o.1).\(o.2).\(o.3)"
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// A CIDR block such as `10.10.0.0/16`. Host bits must be zero, as cloud consoles require.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    public let network: IPv4Address
    public let length: Int

    public init?(network: IPv4Address, length: Int) {
        guard (0...32).contains(length) else { return nil }
        guard network.value & ~Self.mask(length) == 0 else { return nil }
        self.network = network
        self.length = length
    }

    /// Parses `a.b.c.d/n`. Returns nil for malformed text or set host bits; see `parse` for why.
    public init?(_ text: some StringProtocol) {
        guard case .success(let prefix) = Self.parse(text) else { return nil }
        self = prefix
    }

    public enum ParseError: Error, Equatable, Sendable {
        case malformed
        /// Host bits are set; `suggestion` is the block the user most likely meant.
        case hostBitsSet(suggestion: IPv4Prefix)
    }

    public static func parse(_ text: some StringProtocol) -> Result<IPv4Prefix, ParseError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]),
              parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), parts[1].count <= 2,
              let length = Int(parts[1]), (0...32).contains(length)
        else { return .failure(.malformed) }
        if let prefix = IPv4Prefix(network: address, length: length) { return .success(prefix) }
        let masked = IPv4Address(address.value & mask(length))
        return .failure(.hostBitsSet(suggestion: IPv4Prefix(network: masked, length: length)!))
    }

    static func mask(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }

    public var mask: UInt32 { Self.mask(length) }
    public var first: IPv4Address { network }
    public var last: IPv4Address { IPv4Address(network.value | ~mask) }
    /// Number of addresses in the block (2^(32-length)).
    public var size: UInt64 { UInt64(1) << UInt64(32 - length) }

    public func contains(_ address: IPv4Address) -> Bool {
        address.value & mask == network.value
    }

    public func contains(_ other: IPv4Prefix) -> Bool {
        other.length >= length && contains(other.network)
    }

    public func overlaps(_ other: IPv4Prefix) -> Bool {
        contains(other.network) || other.contains(network)
    }

    public var description: String { "\(network)/\(length)" }
}

/// An IPv4 address and a port, written `a.b.c.d:port` in configs.
public struct IPv4Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16

    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":"),
              let address = IPv4Address(text[..<colon]),
              let port = UInt16(text[text.index(after: colon)...]), port > 0
        else { return nil }
        self.init(address: address, port: port)
    }

    public var description: String { "\(address):\(port)" }
}
