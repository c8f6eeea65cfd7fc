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
        // clb-1a has no backup zone: its NAT address is host a's alone (were host b to hold it
        // too, host b's stop would take it away from host a's flows).
        #expect(addresses(a, "vpc2").contains(ip("192.168.23.240")) && !addresses(b, "vpc2").contains(ip("192.168.23.240")))
        #expect(a.carriedENIs == [ENIID(endpoint: "ep-x", zone: "eu-central-1a")])
    }

    /// The plan finds the carried ENIs in its own pass (`Catalog.carriedENIs` is the rule), and
    /// indexes, for zone health, each load balancer listener's ENIs among them: those of the
    /// ports it opens, relayed or kernel, never a standby port's.
    @Test func carriedENIsAndTheHealthIndexFollowTheCatalogsRule() throws {
        for host in [Self.hostA, Self.hostB] {
            let catalog = try Self.catalog(host: host)
            for failover in [BalancerFailover.allHome, Self.moved] {
                let plan = GatewayPlan(catalog: catalog, failover: failover)
                #expect(plan.carriedENIs == catalog.carriedENIs(failover))
                var served: [GatewayPlan.HealthIndex.Listener: Set<ENIID>] = [:]
                for port in plan.eniListeners + plan.kernelPorts {
                    served[.init(loadBalancer: port.loadBalancer, listener: port.listener), default: []].insert(port.eni)
                }
                let indexed = Dictionary(uniqueKeysWithValues: zip(plan.health.listeners, plan.health.enis.map { Set($0.map { plan.carriedENIs[$0] }) }))
                #expect(indexed == served)
            }
        }
    }

    @Test func movedTheBackupHostOpensTheENIsWithItsNATAddress() throws {
        let a = GatewayPlan(catalog: try Self.catalog(host: Self.hostA), failover: Self.moved)
        let zoneB = try #require(a.eniListeners.first { $0.zone == "eu-central-1b" })
        #expect(zoneB.address == ep("10.10.2.4:80") && zoneB.loadBalancer == "clb-1b" && zoneB.servingZone == "eu-central-1a")
        #expect(a.standbyPorts.isEmpty)
        #expect(a.upstreams.first { $0.loadBalancer == "clb-1b" }?.natAddresses == [ip("192.168.23.241")])
        #expect(Set(a.carriedENIs) == [ENIID(endpoint: "ep-x", zone: "eu-central-1a"), ENIID(endpoint: "ep-x", zone: "eu-central-1b")])
        // Host b (should it still run, as when zone b is shifted away) opens nothing of zone b's
        // moved balancer, but keeps the ENI address: host a listens on it now, and the flows
        // opened through it on host b continue.
        let b = GatewayPlan(catalog: try Self.catalog(host: Self.hostB), failover: Self.moved)
        #expect(b.eniListeners.isEmpty)
        #expect(b.standbyPorts.map(\.address) == [ep("10.10.2.4:80")] && addresses(b, "vpc1").contains(ip("10.10.2.4")))
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

    /// A port that the host of the balancer's other zone may still hold when this host opens it
    /// (it lets go at its next heartbeat) is waited for, not refused: the ports of balancers
    /// with a backup zone, when zones are placed on hosts; no other port.
    @Test func portsThatChangeHostsAreWaitedFor() throws {
        let homeOnB = GatewayPlan(catalog: try Self.catalog(host: Self.hostB))
        #expect(homeOnB.eniListeners.filter { $0.loadBalancer == "clb-1b" }.allSatisfy { $0.handover })
        let movedOnA = GatewayPlan(catalog: try Self.catalog(host: Self.hostA), failover: Self.moved)
        #expect(movedOnA.eniListeners.filter { $0.loadBalancer == "clb-1b" }.map(\.handover) == [true])
        // clb-1a has no backup zone: only host a ever listens there.
        #expect(movedOnA.eniListeners.filter { $0.loadBalancer == "clb-1a" }.allSatisfy { !$0.handover })
        // One host carrying every zone hands nothing over.
        let single = GatewayPlan(catalog: try Self.catalog(shifted: ["eu-central-1b"]))
        #expect(single.eniListeners.allSatisfy { !$0.handover } && single.namespaces.allSatisfy { $0.shared.isEmpty })
        // The ENI address in front of clb-1b is both hosts', home or moved, and shared: the
        // host that did not add it takes it as its own too, neither removes it when it stops.
        for plan in [homeOnB, movedOnA, GatewayPlan(catalog: try Self.catalog(host: Self.hostA)),
                     GatewayPlan(catalog: try Self.catalog(host: Self.hostB), failover: Self.moved)] {
            let vpc1 = plan.namespaces.first { $0.netns == "vpc1" }
            #expect(vpc1?.shared == [ip("10.10.2.4")] && vpc1?.addresses.contains(ip("10.10.2.4")) == true, "\(String(describing: vpc1))")
        }
    }
}
