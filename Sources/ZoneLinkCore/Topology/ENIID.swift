/// Which ENI: the endpoint it belongs to and the zone it sits in. An endpoint has at most one
/// ENI per zone, so the pair names it wherever an ENI is meant rather than its address: the
/// gateway's health report, DNS's tagged answers and the control API's health rows.
public struct ENIID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var endpoint: String
    public var zone: String

    public init(endpoint: String, zone: String) {
        self.endpoint = endpoint
        self.zone = zone
    }

    /// `endpoint/zone`: the one text form, in logs and wherever an ENI is a string key.
    public var description: String { "\(endpoint)/\(zone)" }

    /// Parses the text form; nil unless it is exactly two non-empty parts.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(endpoint: String(parts[0]), zone: String(parts[1]))
    }

    public static func < (a: ENIID, b: ENIID) -> Bool { (a.zone, a.endpoint) < (b.zone, b.endpoint) }
}

extension Endpoint {
    /// The identities of this endpoint's ENIs, in declaration order.
    public var eniIDs: [ENIID] { enis.map { id(of: $0) } }

    /// The identity of one of this endpoint's ENIs.
    public func id(of eni: ENI) -> ENIID { ENIID(endpoint: id, zone: eni.zone) }
}
