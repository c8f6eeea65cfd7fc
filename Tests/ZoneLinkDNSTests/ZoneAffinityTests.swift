import Testing
import ZoneLinkCore
import ZoneLinkDNS

/// `ZoneAffinity` on its own: the client's zone from listener, source and Client Subnet, and
/// which ENIs an answer keeps, without a catalog or a query.
@Suite("Zone affinity, decided")
struct ZoneAffinityTests {
    static let vpc = VPC(
        id: "vpc-1", account: "1111111111111111", cidr: IPv4Prefix("10.10.0.0/16")!,
        vswitches: [
            VSwitch(id: "vsw-1a", zone: "eu-central-1a", cidr: IPv4Prefix("10.10.1.0/24")!),
            VSwitch(id: "vsw-1b", zone: "eu-central-1b", cidr: IPv4Prefix("10.10.2.0/24")!),
        ])
    static let forwarders = [IPv4Prefix("10.10.9.0/24")!]

    func clientZone(listener: String? = nil, vpc: VPC? = Self.vpc, source: String?, subnet: String? = nil) -> ZoneAffinity.ClientZone {
        ZoneAffinity.clientZone(
            listenerZone: listener, vpc: vpc, source: source.flatMap { IPv4Address($0) },
            clientSubnet: subnet.flatMap { IPv4Prefix($0) }, trustedForwarders: Self.forwarders)
    }

    @Test func theListenersZoneComesFirst() {
        #expect(clientZone(listener: "eu-central-1a", source: "10.10.2.7") == ZoneAffinity.ClientZone(zone: "eu-central-1a", basis: .listener))
        #expect(clientZone(listener: "eu-central-1a", vpc: nil, source: nil).zone == "eu-central-1a")
    }

    @Test func elseTheVSwitchHoldingTheSource() {
        #expect(clientZone(source: "10.10.2.77") == ZoneAffinity.ClientZone(zone: "eu-central-1b", basis: .vswitch))
        #expect(clientZone(source: "10.10.3.77") == .unknown)
        #expect(clientZone(vpc: nil, source: "10.10.2.77") == .unknown)
        #expect(clientZone(source: nil) == .unknown)
    }

    @Test func elseTheClientSubnetOfATrustedForwarderScopedToTheVSwitch() {
        #expect(clientZone(source: "10.10.9.5", subnet: "10.10.1.0/24") == ZoneAffinity.ClientZone(zone: "eu-central-1a", scope: 24, basis: .clientSubnet))
        #expect(clientZone(source: "10.10.9.5", subnet: "10.10.2.128/25") == ZoneAffinity.ClientZone(zone: "eu-central-1b", scope: 24, basis: .clientSubnet))
        // A subnet wider than any vSwitch, or outside the VPC, names no zone.
        #expect(clientZone(source: "10.10.9.5", subnet: "10.10.0.0/16") == .unknown)
        #expect(clientZone(source: "10.10.9.5", subnet: "192.168.1.0/24") == .unknown)
    }

    @Test func aClientSubnetFromAnUntrustedSourceIsIgnored() {
        #expect(clientZone(source: "10.10.8.5", subnet: "10.10.1.0/24") == .unknown)
        // A source inside a vSwitch is its own zone, whatever subnet it claims.
        #expect(clientZone(source: "10.10.2.5", subnet: "10.10.1.0/24") == ZoneAffinity.ClientZone(zone: "eu-central-1b", basis: .vswitch))
    }

    static let a = ENIID(endpoint: "ep-1", zone: "eu-central-1a")
    static let b = ENIID(endpoint: "ep-1", zone: "eu-central-1b")
    static let c = ENIID(endpoint: "ep-2", zone: "eu-central-1b")
    static let enis = [a, b, c]

    func choose(_ zone: String?, affinity: Bool, unhealthy: Set<ENIID> = []) -> [ENIID] {
        ZoneAffinity.choose(Self.enis, clientZone: zone, affinity: affinity, health: ZoneHealth(unhealthy: unhealthy))
            .map { Self.enis[$0] }
    }

    @Test func affinityKeepsOnlyTheClientsZone() {
        #expect(choose("eu-central-1b", affinity: true) == [Self.b, Self.c])
        #expect(choose("eu-central-1a", affinity: true) == [Self.a])
    }

    @Test func affinityFallsBackWhenTheClientsZoneHasNoHealthyENI() {
        #expect(choose("eu-central-1a", affinity: true, unhealthy: [Self.a]) == [Self.b, Self.c])
        #expect(choose("eu-central-1b", affinity: true, unhealthy: [Self.b]) == [Self.c])
    }

    @Test func withoutAffinityEveryHealthyENIClientsZoneFirst() {
        #expect(choose("eu-central-1b", affinity: false) == [Self.b, Self.c, Self.a])
        #expect(choose("eu-central-1a", affinity: false, unhealthy: [Self.c]) == [Self.a, Self.b])
    }

    @Test func anUnknownZoneGetsEveryHealthyENIInOrder() {
        #expect(choose(nil, affinity: true) == Self.enis)
        #expect(choose(nil, affinity: true, unhealthy: [Self.a]) == [Self.b, Self.c])
    }

    @Test func withNoHealthyENIEveryENIIsKept() {
        #expect(choose("eu-central-1a", affinity: true, unhealthy: Set(Self.enis)) == [Self.a, Self.b, Self.c])
        #expect(choose("eu-central-1b", affinity: true, unhealthy: Set(Self.enis)) == [Self.b, Self.c, Self.a])
        #expect(choose("eu-central-1b", affinity: false, unhealthy: Set(Self.enis)) == [Self.b, Self.c, Self.a])
    }

    @Test func aShiftedZoneAnswersAsAnUnhealthyOne() {
        let shifted = ZoneHealth(shiftedZones: ["eu-central-1a"])
        #expect(!shifted.isAllHealthy && !shifted.isHealthy(Self.a) && shifted.isHealthy(Self.b))
        let chosen = ZoneAffinity.choose(Self.enis, clientZone: "eu-central-1a", affinity: true, health: shifted).map { Self.enis[$0] }
        #expect(chosen == [Self.b, Self.c])
        // Every zone shifted or down: every ENI, as when none is healthy.
        let dark = ZoneHealth(unhealthy: [Self.b, Self.c], shiftedZones: ["eu-central-1a"])
        #expect(ZoneAffinity.choose(Self.enis, clientZone: "eu-central-1a", affinity: true, health: dark).count == 3)
    }

    @Test func anENIMovedToItsBackupZoneAnswersAsOneOfThatZone() {
        // ep-2's zone-b balancer serves from zone a while zone b is shifted away.
        let moved = ZoneHealth(shiftedZones: ["eu-central-1b"], relocated: [Self.c: "eu-central-1a"])
        #expect(!moved.isAllHealthy && moved.isHealthy(Self.c) && !moved.isHealthy(Self.b))
        #expect(moved.zone(of: Self.c) == "eu-central-1a" && moved.zone(of: Self.b) == "eu-central-1b")
        let chosen = ZoneAffinity.choose(Self.enis, clientZone: "eu-central-1a", affinity: true, health: moved).map { Self.enis[$0] }
        #expect(chosen == [Self.a, Self.c])
        // A zone-b client with affinity: no healthy ENI lives in zone b, so every healthy one.
        let fromB = ZoneAffinity.choose(Self.enis, clientZone: "eu-central-1b", affinity: true, health: moved).map { Self.enis[$0] }
        #expect(fromB == [Self.a, Self.c])
        // Moved without a shift (its host is down): the ENI is one of zone a's, healthy.
        let hostDown = ZoneHealth(unhealthy: [Self.b], relocated: [Self.c: "eu-central-1a"])
        #expect(ZoneAffinity.choose(Self.enis, clientZone: "eu-central-1a", affinity: true, health: hostDown).map { Self.enis[$0] } == [Self.a, Self.c])
    }
}
