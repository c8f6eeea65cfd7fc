/// Why the gateway refused a new flow after admission: counted per reason in
/// `zonelink_flows_refused_total{reason}` and named in the throttled `flow refused` warning.
public enum FlowRefusal: String, CaseIterable, Hashable, Sendable {
    /// Every NAT port of the load balancer is in use (also `zonelink_flows_refused_nat_exhausted`).
    case natPortsExhausted = "nat_exhausted"
    /// The load balancer has no NAT address to send from.
    case noNATAddress = "no_nat_address"
    /// The gateway holds `gateway.limits.flows` flows.
    case flows = "flows"
    /// The endpoint holds `gateway.limits.flowsPerEndpoint` flows.
    case flowsPerEndpoint = "flows_per_endpoint"
    /// The client holds `gateway.limits.flowsPerClient` flows.
    case flowsPerClient = "flows_per_client"
    /// The client holds `gateway.limits.natPortsPerClient` ports of the load balancer's pool.
    case natPortsPerClient = "nat_ports_per_client"
    /// The client share of the process's descriptors is spent (`descriptors.reserve` is kept back).
    case descriptors = "descriptors"

    /// The config key that bounds this reason, for messages a user can act on.
    public var configKey: String? {
        switch self {
        case .flows: "gateway.limits.flows"
        case .flowsPerEndpoint: "gateway.limits.flowsPerEndpoint"
        case .flowsPerClient: "gateway.limits.flowsPerClient"
        case .natPortsPerClient: "gateway.limits.natPortsPerClient"
        case .descriptors: "descriptors.reserve"
        case .natPortsExhausted: "gateway.natPorts"
        case .noNATAddress: nil
        }
    }
}
