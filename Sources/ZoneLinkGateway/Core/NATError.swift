import ZoneLinkCore

/// Why the NAT table refused a new flow. The flow is refused (TCP: reset), logged and
/// counted; the gateway carries on.
public enum NATError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Every port of the NAT port range is taken, for this protocol, on every NAT address of
    /// the load balancer: each open flow holds one.
    case portsExhausted(providerVPC: String, natAddresses: [IPv4Address], protocol: TransportProtocol)
    /// The load balancer has no NAT address to send from (validation normally prevents this).
    case noNATAddresses(providerVPC: String, loadBalancer: String)
    /// A bound of `gateway.limits` is reached for the party named in `scope` (the gateway, an
    /// endpoint, a client): `limit` flows or ports are held already.
    case limitReached(FlowRefusal, limit: Int, scope: String)

    /// The reason to count the refusal under.
    public var refusal: FlowRefusal {
        switch self {
        case .portsExhausted: .natPortsExhausted
        case .noNATAddresses: .noNATAddress
        case .limitReached(let reason, _, _): reason
        }
    }

    public var description: String {
        switch self {
        case .portsExhausted(let vpc, let addresses, let proto):
            let list = addresses.map(\.description).joined(separator: ", ")
            return "no free \(proto) NAT port in \(vpc) on \(list): every port is held by an open flow; "
                + "add natAddresses to the load balancer (each adds a full port range) or widen the NAT port range"
        case .noNATAddresses(let vpc, let balancer):
            return "load balancer \(balancer) has no natAddresses, so flows to it have no source address in \(vpc); "
                + "add at least one provider-side address of \(vpc) to its natAddresses"
        case .limitReached(let reason, let limit, let scope):
            let what = reason == .natPortsPerClient ? "NAT ports" : "flows"
            return "\(scope) holds \(limit) \(what), the limit \(reason.configKey ?? reason.rawValue); "
                + "a flow that ends makes room, or raise \(reason.configKey ?? "the limit") in the config"
        }
    }
}
