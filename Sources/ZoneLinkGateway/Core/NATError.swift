import ZoneLinkCore

/// Why the NAT table refused a new flow. The flow is refused (TCP: reset), logged and
/// counted; the gateway carries on.
public enum NATError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Every port of the NAT port range is taken, for this protocol, on every NAT address of
    /// the load balancer: each open flow holds one.
    case portsExhausted(providerVPC: String, natAddresses: [IPv4Address], protocol: TransportProtocol)
    /// The load balancer has no NAT address to send from (validation normally prevents this).
    case noNATAddresses(providerVPC: String, loadBalancer: String)

    public var description: String {
        switch self {
        case .portsExhausted(let vpc, let addresses, let proto):
            let list = addresses.map(\.description).joined(separator: ", ")
            return "no free \(proto) NAT port in \(vpc) on \(list): every port is held by an open flow; "
                + "add natAddresses to the load balancer (each adds a full port range) or widen the NAT port range"
        case .noNATAddresses(let vpc, let balancer):
            return "load balancer \(balancer) has no natAddresses, so flows to it have no source address in \(vpc); "
                + "add at least one provider-side address of \(vpc) to its natAddresses"
        }
    }
}
