import ZoneLinkCore

/// Why a new flow was not opened (TCP: reset; UDP: dropped). Some reasons are the client's or
/// the provider's doing and only logged at debug level (a firewall or a refusing backend
/// would have done the same); the others are the gateway's limits, counted in
/// `zonelink_flows_refused_total{reason}` and warned about (`counted`).
public enum OpeningRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// The endpoint's security groups or connection state do not admit the flow.
    case denied(DenialReason)
    /// The client share of the process's file descriptors is spent.
    case outOfDescriptors
    /// Every backend of the load balancer listener is unhealthy or drained.
    case noHealthyBackend
    /// The NAT table refused: no port, no NAT address, or a `gateway.limits` bound.
    case nat(NATError)
    /// The provider side could not be reached from the NAT endpoint (refused, timed out, or
    /// every NAT port tried was held by a socket outside ZoneLink).
    case unreachable(target: IPv4Endpoint, from: IPv4Endpoint, reason: String)

    /// The reason the refusal is counted under; nil when it is not one of the gateway's limits.
    public var counted: FlowRefusal? {
        switch self {
        case .outOfDescriptors: .descriptors
        case .nat(let error): error.refusal
        case .denied, .noHealthyBackend, .unreachable: nil
        }
    }

    /// A name of the kind of refusal, for grouping (one event per endpoint and category per
    /// interval): the counted reason, or `denied`, `no_healthy_backend`, `unreachable`.
    public var category: String {
        switch self {
        case .denied: "denied"
        case .noHealthyBackend: "no_healthy_backend"
        case .unreachable: "unreachable"
        case .outOfDescriptors, .nat: counted?.rawValue ?? "refused"
        }
    }

    /// What the endpoint's two accounts may both read: the consumer's and the provider's
    /// events carry this, so it names neither side's addresses (no client address, no NAT
    /// address or provider VPC); `description`, for the operator's log, names them all.
    public var summary: String {
        switch self {
        case .denied(.notConnected(let state)):
            "the endpoint's connection is \(state.rawValue), not Connected"
        case .denied(.noRuleAllows(let proto, let port, _, let groups)) where groups.isEmpty:
            "the endpoint has no security group, so nothing is allowed (default deny): \(proto)/\(port)"
        case .denied(.noRuleAllows(let proto, let port, _, let groups)):
            "no ingress rule of \(groups.joined(separator: ", ")) allows \(proto)/\(port) from the client"
        case .outOfDescriptors:
            "the gateway is out of client descriptors"
        case .noHealthyBackend:
            "no healthy backend behind the load balancer"
        case .nat(.portsExhausted):
            "every NAT port of the load balancer is held by an open flow"
        case .nat(.noNATAddresses):
            "the load balancer has no NAT address"
        case .nat(.limitReached(let reason, let limit, _)):
            "the limit \(reason.configKey ?? reason.rawValue) (\(limit)) is reached"
        case .unreachable:
            "the load balancer's target could not be reached"
        }
    }

    public var description: String {
        switch self {
        case .denied(let reason): "denied: \(reason)"
        case .outOfDescriptors: "out of client descriptors"
        case .noHealthyBackend: "no healthy backend behind the load balancer"
        case .nat(let error): "\(error)"
        case .unreachable(let target, let nat, let reason): "cannot reach \(target) from \(nat): \(reason)"
        }
    }
}
