import Glibc
import NIOCore
import Testing
import ZoneLinkCore
@testable import ZoneLinkGateway

/// `gateway.limits` as the NAT table enforces them, with explicit small values: each bound
/// refuses the flow past it with its own reason, counts it, and a flow that ends makes room.
@Suite struct FlowLimitTests {
    func limited(
        flows: Int = .max, perEndpoint: Int = .max, perClient: Int = .max, portsPerClient: Int = .max
    ) -> NATTable {
        NATTable(limits: GatewayLimits(
            flows: flows, flowsPerEndpoint: perEndpoint, flowsPerClient: perClient, natPortsPerClient: portsPerClient))
    }

    /// A flow of client `address` (port `port`) through `endpoint` to load balancer `balancer`.
    @discardableResult
    func open(
        _ table: inout NATTable, client address: String, port: Int, vpc: String = "vpc-1",
        endpoint: String = "ep-consumer1", balancer: String = "clb-1", proto: TransportProtocol = .tcp
    ) throws(NATError) -> Flow {
        try table.open(
            key(proto, vpc: vpc, client: "\(address):\(port)"), target: seedTarget, providerVPC: "vpc-2",
            natAddresses: seedNAT, endpoint: endpoint, loadBalancer: balancer, backend: 0, now: .zero)
    }

    /// The reason `body` was refused for; nil when it opened its flow.
    func refusal(_ body: () throws -> Void) -> FlowRefusal? {
        do {
            try body()
            return nil
        } catch {
            return (error as? NATError)?.refusal
        }
    }

    @Test func totalFlows() throws {
        var table = limited(flows: 3)
        for n in 0..<3 { try open(&table, client: "10.10.2.\(n + 1)", port: 40000) }
        #expect(refusal { try open(&table, client: "10.10.2.9", port: 40000) } == .flows)
        #expect(table.refusals[.flows] == 1)
        #expect(table.count == 3)
        table.remove(key(client: "10.10.2.1:40000"))
        try open(&table, client: "10.10.2.9", port: 40000)
        #expect(table.count == 3)
    }

    @Test func flowsPerEndpoint() throws {
        var table = limited(perEndpoint: 2)
        try open(&table, client: "10.10.2.1", port: 1, endpoint: "ep-a")
        try open(&table, client: "10.10.2.2", port: 1, endpoint: "ep-a")
        #expect(refusal { try open(&table, client: "10.10.2.3", port: 1, endpoint: "ep-a") } == .flowsPerEndpoint)
        try open(&table, client: "10.10.2.3", port: 1, endpoint: "ep-b")  // another endpoint is not bound by ep-a's count
        #expect(table.flows(ofEndpoint: "ep-a") == 2)
        table.remove(key(client: "10.10.2.1:1"))
        #expect(table.flows(ofEndpoint: "ep-a") == 1)
        try open(&table, client: "10.10.2.4", port: 1, endpoint: "ep-a")
        #expect(table.refusals[.flowsPerEndpoint] == 1)
    }

    @Test func flowsPerClientCountsAddressInVPCNotPort() throws {
        var table = limited(perClient: 2)
        try open(&table, client: "10.10.2.1", port: 40000)
        try open(&table, client: "10.10.2.1", port: 40001, balancer: "clb-2")
        #expect(refusal { try open(&table, client: "10.10.2.1", port: 40002) } == .flowsPerClient)
        // Another address, and the same address in another VPC, are other clients.
        try open(&table, client: "10.10.2.2", port: 40000)
        try open(&table, client: "10.10.2.1", port: 40000, vpc: "vpc-3")
        #expect(table.flows(ofClient: ip("10.10.2.1"), vpc: "vpc-1") == 2)
        // Reopening a flow the client already has is not a new flow.
        try open(&table, client: "10.10.2.1", port: 40000)
        #expect(table.refusals[.flowsPerClient] == 1)
        table.closeDirection(key(client: "10.10.2.1:40000"), .clientToTarget, now: .zero)
        table.closeDirection(key(client: "10.10.2.1:40000"), .targetToClient, now: .zero)
        try open(&table, client: "10.10.2.1", port: 40002)
        #expect(table.flows(ofClient: ip("10.10.2.1"), vpc: "vpc-1") == 2)
    }

    @Test func natPortsPerClientOnOneLoadBalancer() throws {
        var table = limited(portsPerClient: 2)
        try open(&table, client: "10.10.2.1", port: 1)
        try open(&table, client: "10.10.2.1", port: 2)
        #expect(refusal { try open(&table, client: "10.10.2.1", port: 3) } == .natPortsPerClient)
        // Other pools: another load balancer, another protocol; and other clients on this one.
        try open(&table, client: "10.10.2.1", port: 3, balancer: "clb-2")
        try open(&table, client: "10.10.2.1", port: 3, proto: .udp)
        try open(&table, client: "10.10.2.2", port: 1)
        #expect(table.natPorts(ofClient: ip("10.10.2.1"), vpc: "vpc-1", loadBalancer: "clb-1", protocol: .tcp) == 2)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: seedNAT[0]) == 4)
        // Expiry frees the port as removal does.
        let expired = table.expire(now: .seconds(901))
        #expect(expired.count == 5)
        try open(&table, client: "10.10.2.1", port: 3)
        #expect(table.refusals[.natPortsPerClient] == 1)
    }

    @Test func exhaustionStillCountsUnderItsOldName() throws {
        var table = NATTable(portRange: 20000...20000, limits: GatewayLimits(flows: 10, flowsPerEndpoint: 10, flowsPerClient: 10, natPortsPerClient: 10))
        try open(&table, client: "10.10.2.1", port: 1)
        #expect(refusal { try open(&table, client: "10.10.2.2", port: 1) } == .natPortsExhausted)
        #expect(table.refusedForExhaustion == 1)
        #expect(table.refusals[.natPortsExhausted] == 1)
        table.countRefusal(.descriptors)
        #expect(table.refusals[.descriptors] == 1)
    }

    @Test func refusalNamesTheKeyToRaise() {
        let error = NATError.limitReached(.flowsPerClient, limit: 5, scope: "client 10.10.2.1 of vpc-1")
        #expect(error.description.contains("gateway.limits.flowsPerClient"))
        #expect(error.description.contains("10.10.2.1"))
    }
}

@Suite struct ProbeOutcomeTests {
    @Test func ownShortageOfSocketsIsNoResult() {
        for code in [EMFILE, ENFILE, ENOBUFS] {
            #expect(HealthProbe.outcome(of: IOError(errnoCode: code, reason: "socket")) == .inconclusive)
        }
        #expect(HealthProbe.outcome(of: IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .failure)
        #expect(HealthProbe.outcome(of: ChannelError.connectTimeout(.seconds(5))) == .failure)
    }

    @Test func noResultNeitherFailsNorRecoversABackend() {
        var state = HealthState(healthyThreshold: 2, unhealthyThreshold: 2)
        #expect(state.record(.failure) == nil)
        for _ in 0..<10 { #expect(state.record(.inconclusive) == nil) }
        #expect(state.isHealthy)
        #expect(state.streak == 1)  // the failure before still counts; the probes without a socket did not
        #expect(state.record(.failure) == .becameUnhealthy)
        for _ in 0..<10 { #expect(state.record(.inconclusive) == nil) }
        #expect(!state.isHealthy)
        #expect(state.record(.success) == nil)
        #expect(state.record(.success) == .becameHealthy)
    }
}
