import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

/// A zonal shift in the gateway: no new flow to a shifted zone's backends, and its drain.
@Suite("Zonal shift in the gateway")
struct ZonalShiftGatewayTests {
    /// A service on clb-1a and clb-1b and an endpoint with an ENI in each zone, after the
    /// seed's infrastructure.
    static let serviceInZonesAAndB = """
        endpointServices:
          - id: epsrv-x
            account: account-b
            resources: [{zone: eu-central-1a, loadBalancer: clb-1a}, {zone: eu-central-1b, loadBalancer: clb-1b}]
            autoAcceptConnections: true
            whitelist: ["1111111111111111"]
        endpoints:
          - id: ep-x
            account: account-a
            service: epsrv-x
            vpc: vpc-1
            zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.4}, {zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.4}]

        """

    /// The seed's infrastructure with the service in zones a and b and an endpoint in both.
    static func plan(shifts: [ZonalShift] = [], host: String = "") throws -> GatewayPlan {
        var configuration = try Configuration.parse(yaml: host + SeedFixture.infrastructureYAML + Self.serviceInZonesAAndB, file: "test.yaml")
        configuration.zonalShifts = shifts
        return GatewayPlan(catalog: try Catalog(configuration: configuration, file: "test.yaml"))
    }

    /// clb-1b's listener with its first backend (192.168.24.200) moved into zone a.
    static func upstream() throws -> GatewayPlan.Upstream {
        var upstream = try #require(try plan().upstreams.first { $0.loadBalancer == "clb-1b" })
        #expect(upstream.backendZones == ["eu-central-1b", "eu-central-1b"])
        upstream.backendZones = ["eu-central-1a", "eu-central-1b"]
        return upstream
    }

    @Test func backendsOfAShiftedZoneGetNoNewFlow() throws {
        let balancer = Balancer(try Self.upstream())
        balancer.shift(away: ["eu-central-1a"])
        let picks = (0..<6).compactMap { _ in balancer.pick()?.target.address.description }
        #expect(picks == Array(repeating: "192.168.24.12", count: 6))
        #expect(balancer.isServing)
        #expect(balancer.backendHealth.map(\.shifted) == [true, false])
        balancer.shift(away: ["eu-central-1a", "eu-central-1b"])
        #expect(balancer.pick() == nil && !balancer.isServing)
        balancer.shift(away: [])
        #expect(Set((0..<4).compactMap { _ in balancer.pick()?.target.address.description }) == ["192.168.24.200", "192.168.24.12"])
    }

    @Test func aShiftIsAPlanValueNotAChangeOfListener() throws {
        // The upstreams stay equal, so balancers keep their health and counts across a shift.
        let shifted = try Self.plan(shifts: [ZonalShift(zone: "eu-central-1b", startedAt: 1)])
        #expect(shifted.upstreams == (try Self.plan()).upstreams)
        #expect(shifted.zonalShifts.map(\.zone) == ["eu-central-1b"])
    }

    @Test func aDrainClosesFlowsThroughTheZonesENIsAndToItsBackendsOnceDue() throws {
        let plan = try Self.plan(shifts: [ZonalShift(zone: "eu-central-1a", startedAt: 100, drainAt: 160)])
        let drain = ZoneDrain(plan: plan)
        #expect(drain.due(at: 159).isEmpty && drain.due(at: 160) == ["eu-central-1a"])
        var table = NATTable(portRange: 40000...40100)
        func open(client: Int, eni: String, target: String) throws -> Flow {
            try table.open(
                FlowKey(proto: .tcp, vpc: "vpc-1", client: ep("10.10.1.\(client):5000"), eni: ep("\(eni):80")),
                target: ep("\(target):80"), providerVPC: "vpc-2", natAddresses: [ip("192.168.24.240")],
                endpoint: "ep-x", loadBalancer: "clb-1b", backend: 0, now: at(0))
        }
        let throughA = try open(client: 1, eni: "10.10.1.4", target: "192.168.24.12")
        let throughB = try open(client: 2, eni: "10.10.2.4", target: "192.168.24.12")
        #expect(drain.isDue(throughA, zones: ["eu-central-1a"]))
        #expect(!drain.isDue(throughB, zones: ["eu-central-1a"]))
        // Backends in zone b: a zone-b drain closes flows to them, whichever ENI they came through.
        let drainB = ZoneDrain(plan: try Self.plan(shifts: [ZonalShift(zone: "eu-central-1b", startedAt: 100, drainAt: 100)]))
        #expect(drainB.isDue(throughA, zones: ["eu-central-1b"]) && drainB.isDue(throughB, zones: ["eu-central-1b"]))
    }

    /// `host:` places zones on hosts: a host of zone a opens zone a's ENIs only, and a host
    /// that does not carry the consumer's VPC adds nothing in its namespace.
    @Test func aHostOpensOnlyTheENIsOfTheZonesAndVPCsItCarries() throws {
        let everything = try Self.plan()
        #expect(Set(everything.eniListeners.map(\.zone)) == ["eu-central-1a", "eu-central-1b"])
        let zoneA = try Self.plan(host: "host: {id: gw-a, zones: [eu-central-1a]}\n")
        #expect(!zoneA.eniListeners.isEmpty && zoneA.eniListeners.allSatisfy { $0.zone == "eu-central-1a" })
        let vpc1 = zoneA.namespaces.first { $0.netns == "vpc1" }?.addresses ?? []
        #expect(vpc1.contains(IPv4Address("10.10.1.4")!) && !vpc1.contains(IPv4Address("10.10.2.4")!), "\(vpc1)")
        let providerOnly = try Self.plan(host: "host: {id: gw-p, vpcs: [vpc-2]}\n")
        #expect(providerOnly.eniListeners.isEmpty)
        #expect(providerOnly.namespaces.allSatisfy { $0.netns == "vpc2" } && !providerOnly.namespaces.isEmpty)
    }
}
