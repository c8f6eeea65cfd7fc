import ZoneLinkCore
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
