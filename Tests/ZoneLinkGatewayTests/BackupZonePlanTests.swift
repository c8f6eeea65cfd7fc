import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

/// The gateway plan of a load balancer with a backup zone, on the host of each zone: who opens
/// the ENIs in front of it, which NAT addresses its flows leave from, home and moved.
@Suite("Backup zone in the gateway plan")
struct BackupZonePlanTests {
    /// The seed's infrastructure with clb-1b backed up in zone a (a NAT address there), and an
    /// endpoint of a service in zones a and b.
    static func catalog(host: String = "", shifted: [String] = []) throws -> Catalog {
        let infrastructure = SeedFixture.infrastructureYAML.replacingOccurrences(
            of: "zone: eu-central-1b\n    natAddresses: [192.168.24.240]",
            with: "zone: eu-central-1b\n    backupZone: eu-central-1a\n    natAddresses: [192.168.24.240, 192.168.23.241]")
        #expect(infrastructure != SeedFixture.infrastructureYAML)
        var configuration = try Configuration.parse(yaml: host + infrastructure + ZonalShiftGatewayTests.serviceInZonesAAndB, file: "test.yaml")
        configuration.zonalShifts = shifted.map { ZonalShift(zone: $0, startedAt: 0) }
        return try Catalog(configuration: configuration, file: "test.yaml")
    }

    static let hostA = "host: {id: gw-a, zones: [eu-central-1a]}\n"
    static let hostB = "host: {id: gw-b, zones: [eu-central-1b]}\n"
    static let moved = BalancerFailover(moved: ["clb-1b": "eu-central-1a"])

    func addresses(_ plan: GatewayPlan, _ netns: String) -> Set<IPv4Address> {
        Set(plan.namespaces.filter { $0.netns == netns }.flatMap(\.addresses))
    }

    @Test func atHomeEachZonesHostServesItsOwn() throws {
        let a = GatewayPlan(catalog: try Self.catalog(host: Self.hostA))
        let b = GatewayPlan(catalog: try Self.catalog(host: Self.hostB))
        #expect(Set(a.eniListeners.map(\.zone)) == ["eu-central-1a"])
        #expect(Set(b.eniListeners.map(\.zone)) == ["eu-central-1b"])
        #expect(b.upstreams.first { $0.loadBalancer == "clb-1b" }?.natAddresses == [ip("192.168.24.240")])
        // Host a stands by for clb-1b: the zone-b ENI address and the zone-a NAT address are
        // there, nothing listens on the ENI.
        #expect(a.standbyPorts.map(\.address) == [ep("10.10.2.4:80")])
        #expect(addresses(a, "vpc1").contains(ip("10.10.2.4")))
        #expect(addresses(a, "vpc2").contains(ip("192.168.23.241")) && !addresses(a, "vpc2").contains(ip("192.168.24.240")))
        #expect(addresses(b, "vpc2").contains(ip("192.168.24.240")) && !addresses(b, "vpc2").contains(ip("192.168.23.241")))
        #expect(a.carriedENIs == [ENIID(endpoint: "ep-x", zone: "eu-central-1a")])
    }

    @Test func movedTheBackupHostOpensTheENIsWithItsNATAddress() throws {
        let a = GatewayPlan(catalog: try Self.catalog(host: Self.hostA), failover: Self.moved)
        let zoneB = try #require(a.eniListeners.first { $0.zone == "eu-central-1b" })
        #expect(zoneB.address == ep("10.10.2.4:80") && zoneB.loadBalancer == "clb-1b" && zoneB.servingZone == "eu-central-1a")
        #expect(a.standbyPorts.isEmpty)
        #expect(a.upstreams.first { $0.loadBalancer == "clb-1b" }?.natAddresses == [ip("192.168.23.241")])
        #expect(Set(a.carriedENIs) == [ENIID(endpoint: "ep-x", zone: "eu-central-1a"), ENIID(endpoint: "ep-x", zone: "eu-central-1b")])
        // Host b (should it still run) opens nothing of zone b's moved balancer.
        let b = GatewayPlan(catalog: try Self.catalog(host: Self.hostB), failover: Self.moved)
        #expect(b.eniListeners.isEmpty)
    }

    @Test func oneHostForEveryZoneKeepsItsENIsAndChangesTheNATAddress() throws {
        let catalog = try Self.catalog(shifted: ["eu-central-1b"])
        let failover = catalog.balancerFailover(unavailable: catalog.unavailableZones(liveElsewhere: nil))
        #expect(failover == Self.moved)
        let plan = GatewayPlan(catalog: catalog, failover: failover)
        #expect(plan.eniListeners.count == 2 && plan.standbyPorts.isEmpty)
        #expect(plan.upstreams.first { $0.loadBalancer == "clb-1b" }?.natAddresses == [ip("192.168.23.241")])
        // The catalog alone decides the same: a shift moves the balancer on a single host.
        #expect(GatewayPlan(catalog: catalog) == plan)
        #expect(GatewayPlan(catalog: catalog, failover: .allHome).upstreams.first { $0.loadBalancer == "clb-1b" }?.natAddresses == [ip("192.168.24.240")])
    }
}
