import Logging
import ZoneLinkCore
import ZoneLinkNetwork
@testable import ZoneLinkGateway

func ip(_ text: String) -> IPv4Address { IPv4Address(text)! }
func ep(_ text: String) -> IPv4Endpoint { IPv4Endpoint(text)! }
func cidr(_ text: String) -> IPv4Prefix { IPv4Prefix(text)! }

/// The mock clock: a moment `seconds` after the origin.
func at(_ seconds: Int) -> Moment { .seconds(seconds) }

/// A consumer-side key of the seed scenario: client 10.10.2.1 to the ENI 10.10.2.50:80 in vpc-1.
func key(
    _ proto: TransportProtocol = .tcp, vpc: String = "vpc-1", client: String = "10.10.2.1:40000",
    eni: String = "10.10.2.50:80"
) -> FlowKey {
    FlowKey(proto: proto, vpc: vpc, client: ep(client), eni: ep(eni))
}

let seedNAT = [ip("192.168.24.240")]
let seedTarget = ep("192.168.24.200:80")

extension NATTable {
    /// Opens a flow to the seed scenario's provider (vpc-2, clb-1) with the given NAT addresses.
    @discardableResult
    mutating func open(
        _ key: FlowKey, nat: [IPv4Address] = seedNAT, target: IPv4Endpoint = seedTarget,
        providerVPC: String = "vpc-2", loadBalancer: String = "clb-1", at now: Moment = .zero
    ) throws(NATError) -> Flow {
        try open(
            key, target: target, providerVPC: providerVPC, natAddresses: nat, endpoint: "ep-consumer1",
            loadBalancer: loadBalancer, backend: 0, now: now)
    }
}

/// The route of an ENI listener on `eni` (a port the kernel picks: 0) in the host namespace
/// whose flows go to `target`, an external load balancer, from `nat`; its security group
/// admits `admit` on every port.
func loopbackRoute(
    _ proto: TransportProtocol, eni: IPv4Address, nat: IPv4Address, target: IPv4Endpoint, flows: FlowRegistry,
    admit: IPv4Prefix, logger: Logger, proxyIdentity: ProxyIdentity? = nil, bandwidth: ConnectionBandwidth? = nil,
    spliceAfterExchanges: Int? = nil
) -> RouteBox {
    let upstream = GatewayPlan.Upstream(
        loadBalancer: "clb-test", listener: 0, providerVPC: "vpc-2", providerNetns: nil, natAddresses: [nat],
        external: target, backends: [], backendZones: [], externalZone: nil, backendPort: target.port, scheduler: .wrr,
        healthCheck: HealthCheck(),
        proxyProtocol: proxyIdentity != nil)
    let listener = GatewayPlan.ENIListener(
        proto: proto, vpc: "vpc-1", netns: nil, address: IPv4Endpoint(address: eni, port: 0), endpoint: "ep-test",
        zone: "zone-a", loadBalancer: "clb-test", listener: 0,
        securityGroups: [SecurityGroup(id: "sg-test", ingress: [IngressRule(protocol: proto, ports: 0...65535, source: admit)])],
        connection: .connected, proxyIdentity: proxyIdentity)
    return RouteBox(ENIRoute(listener: listener, balancer: Balancer(upstream), provider: .host, flows: flows, logger: logger,
                              bandwidth: bandwidth, spliceAfterExchanges: spliceAfterExchanges))
}
