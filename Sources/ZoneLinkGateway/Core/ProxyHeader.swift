import ZoneLinkCore

/// Who a flow came from, as a provider's backend learns it from the PROXY v2 header's TLVs:
/// the endpoint the consumer connected through, its VPC and account, and the zone of the ENI.
/// Carried by the gateway plan to every ENI listener of a service that sets
/// `proxyProtocol: v2`; nil there means no header is ever sent.
public struct ProxyIdentity: Sendable, Hashable {
    public var endpoint: String
    public var consumerVPC: String
    public var consumerAccount: String
    /// The availability zone of the ENI the client connected to.
    public var zone: String

    public init(endpoint: String, consumerVPC: String, consumerAccount: String, zone: String) {
        self.endpoint = endpoint
        self.consumerVPC = consumerVPC
        self.consumerAccount = consumerAccount
        self.zone = zone
    }
}

/// The PROXY protocol version 2 header (haproxy.org, `proxy-protocol.txt` section 2.2), as the
/// gateway writes it at the start of every TCP flow to a target of a service that asks for it.
/// Pure: bytes in, bytes out; the relay writes them before any byte of the client.
///
/// A `proxy` header carries the consumer client's address and port as the source and the
/// ENI's as the destination (TCP over IPv4), then these TLVs, in this order:
/// - `0xEA` (AWS VPC endpoint form): subtype `0x01`, then the endpoint ID in ASCII;
/// - `0xE0` (ZoneLink's own), once per field, the first value byte a subtype: `0x01` the
///   consumer VPC ID, `0x02` the consumer account ID, `0x03` the ENI's zone (ASCII).
///
/// A `local` header (command LOCAL, family UNSPEC, no addresses, no TLVs) starts the health
/// checks of such a service: the backend takes the connection as the gateway's own.
public enum ProxyHeader {
    /// The 12 bytes every v2 header starts with.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// Version 2 (high nibble), command PROXY (low nibble 1).
    public static let versionCommandProxy: UInt8 = 0x21
    /// Version 2, command LOCAL (low nibble 0).
    public static let versionCommandLocal: UInt8 = 0x20
    /// Address family INET (high nibble 1), transport STREAM (low nibble 1).
    public static let familyTCPv4: UInt8 = 0x11
    /// AF_UNSPEC, UNSPEC: what a LOCAL header carries.
    public static let familyUnspecified: UInt8 = 0x00
    /// The TLV type AWS uses for its VPC endpoint ID (`PP2_TYPE_AWS`), in the custom range.
    public static let typeAWS: UInt8 = 0xEA
    /// The subtype of `typeAWS` that carries the endpoint ID (`PP2_SUBTYPE_AWS_VPCE_ID`).
    public static let subtypeAWSEndpointID: UInt8 = 0x01
    /// ZoneLink's own TLV type, in the custom range (0xE0–0xEF).
    public static let typeZoneLink: UInt8 = 0xE0

    /// The subtypes of ZoneLink's TLV (`typeZoneLink`): the first byte of its value.
    public enum ZoneLinkSubtype: UInt8, Sendable, CaseIterable {
        case consumerVPC = 0x01
        case consumerAccount = 0x02
        case zone = 0x03
    }

    /// The longest value, in bytes after the subtype, a TLV carries; longer ones are cut here.
    /// IDs never come near it (endpoint IDs and zones are DNS labels of at most 63 bytes,
    /// account IDs 16 digits); it keeps the header's 16-bit length from ever overflowing.
    public static let maxValueLength = 255

    /// A PROXY header for a TCP flow from `client` (the consumer's original address and port)
    /// to `eni` (the ENI's address and port), with `identity` in the TLVs.
    public static func proxy(client: IPv4Endpoint, eni: IPv4Endpoint, identity: ProxyIdentity) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(12 + 4 * (4 + 64))
        append(client.address.value, to: &body)
        append(eni.address.value, to: &body)
        append(client.port, to: &body)
        append(eni.port, to: &body)
        appendTLV(typeAWS, subtype: subtypeAWSEndpointID, identity.endpoint, to: &body)
        appendTLV(typeZoneLink, subtype: ZoneLinkSubtype.consumerVPC.rawValue, identity.consumerVPC, to: &body)
        appendTLV(typeZoneLink, subtype: ZoneLinkSubtype.consumerAccount.rawValue, identity.consumerAccount, to: &body)
        appendTLV(typeZoneLink, subtype: ZoneLinkSubtype.zone.rawValue, identity.zone, to: &body)
        var header = signature + [versionCommandProxy, familyTCPv4]
        append(UInt16(body.count), to: &header)
        return header + body
    }

    /// A LOCAL header: the connection is the gateway's own (a health check), not a client's.
    public static let local: [UInt8] = signature + [versionCommandLocal, familyUnspecified, 0x00, 0x00]

    private static func appendTLV(_ type: UInt8, subtype: UInt8, _ value: String, to bytes: inout [UInt8]) {
        let value = Array(value.utf8.prefix(maxValueLength))
        bytes.append(type)
        append(UInt16(1 + value.count), to: &bytes)
        bytes.append(subtype)
        bytes.append(contentsOf: value)
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)])
    }

    private static func append(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: [UInt8(value >> 8), UInt8(value & 0xFF)])
    }
}
