import ZoneLinkCore

/// Why a new flow was refused at an ENI (TCP: reset; UDP: dropped).
public enum DenialReason: Equatable, Sendable, CustomStringConvertible {
    /// The endpoint's connection is not `Connected`: the provider has not accepted it, or
    /// rejected or disconnected it.
    case notConnected(ConnectionState)
    /// No ingress rule of the endpoint's security groups allows the flow; `groups` is empty
    /// when the endpoint has none.
    case noRuleAllows(protocol: TransportProtocol, port: UInt16, source: IPv4Address, groups: [String])

    public var description: String {
        switch self {
        case .notConnected(let state):
            return "the endpoint's connection is \(state.rawValue), not Connected; "
                + "flows pass once the service provider accepts the connection"
        case .noRuleAllows(let proto, let port, let source, let groups) where groups.isEmpty:
            return "the endpoint has no security group, so nothing is allowed (default deny); "
                + "attach one with an ingress rule allowing \(proto)/\(port) from \(source)"
        case .noRuleAllows(let proto, let port, let source, let groups):
            return "no ingress rule of \(groups.joined(separator: ", ")) allows \(proto)/\(port) from \(source)"
        }
    }
}

/// Whether a new flow may pass an ENI.
public enum AdmissionDecision: Equatable, Sendable, CustomStringConvertible {
    case admit
    case deny(DenialReason)

    public var description: String {
        switch self {
        case .admit: "admitted"
        case .deny(let reason): "denied: \(reason)"
        }
    }
}

/// The admission rule for flows arriving at an endpoint's ENI, in the order a cloud applies it.
public enum Admission {
    /// 1. An endpoint whose connection is not `Connected` admits nothing (checked first: a
    ///    rejected endpoint's security groups do not matter).
    /// 2. Otherwise a flow passes when any ingress rule of any of the endpoint's security groups
    ///    allows its protocol, destination port and source address (rules only allow).
    /// 3. Everything else is denied, including every flow to an endpoint with no security
    ///    group at all: no rule, no access, as with security groups everywhere.
    ///
    /// Allocates nothing when admitting.
    public static func admit(
        protocol proto: TransportProtocol, port: UInt16, source: IPv4Address, connection: ConnectionState,
        securityGroups: [SecurityGroup]
    ) -> AdmissionDecision {
        guard connection == .connected else { return .deny(.notConnected(connection)) }
        for group in securityGroups {
            for rule in group.ingress where rule.allows(proto, port: port, from: source) {
                return .admit
            }
        }
        return .deny(.noRuleAllows(protocol: proto, port: port, source: source, groups: securityGroups.map(\.id)))
    }
}
