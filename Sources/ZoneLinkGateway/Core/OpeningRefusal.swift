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
