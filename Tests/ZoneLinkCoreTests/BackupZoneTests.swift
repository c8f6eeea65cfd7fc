import Testing
@testable import ZoneLinkCore

/// `loadBalancers[].backupZone`: what the validator refuses, and the pure decision of where a
/// balancer serves from (zones unavailable → balancers moved → ENIs relocated, NAT addresses).
@Suite("Backup zone of a load balancer")
struct BackupZoneTests {
    /// The base config's clb-1b (zone b) with zone a as its backup and a NAT address there.
    static let withBackup = edited(
        "zone: eu-central-1b\n    natAddresses: [192.168.24.240]",
        "zone: eu-central-1b\n    backupZone: eu-central-1a\n    natAddresses: [192.168.24.240, 192.168.23.241]")

    let zoneA1 = ENIID(endpoint: "ep-consumer1", zone: "eu-central-1a")
    let zoneB1 = ENIID(endpoint: "ep-consumer1", zone: "eu-central-1b")
    let zoneB3 = ENIID(endpoint: "ep-consumer3", zone: "eu-central-1b")

    func catalog(_ yaml: String = withBackup, host: String? = nil, shifted: [String] = []) throws -> Catalog {
        var configuration = try Configuration.parse(yaml: (host.map { $0 + "\n" } ?? "") + yaml, file: "t")
        configuration.zonalShifts = shifted.map { ZonalShift(zone: $0, startedAt: 0) }
        return try Catalog(configuration: configuration, file: "t")
    }

    @Test func theKeyIsReadAndOptional() throws {
        #expect(try catalog().loadBalancer("clb-1b")?.backupZone == "eu-central-1a")
        #expect(try catalog(baseConfig).loadBalancer("clb-1b")?.backupZone == nil)
    }

    static let refused: [BrokenConfig] = [
        .init(rule: "backup zone is not the own zone",
              yaml: withBackup.replacingOccurrences(of: "backupZone: eu-central-1a", with: "backupZone: eu-central-1b"),
              keyPath: "loadBalancers[0].backupZone", problem: "own zone"),
        .init(rule: "backup zone has a vSwitch in the VPC",
              yaml: withBackup.replacingOccurrences(of: "backupZone: eu-central-1a", with: "backupZone: eu-central-1c"),
              keyPath: "loadBalancers[0].backupZone", problem: "no vSwitch in zone 'eu-central-1c'"),
        .init(rule: "a NAT address in the backup zone",
              yaml: withBackup.replacingOccurrences(of: "[192.168.24.240, 192.168.23.241]", with: "[192.168.24.240]"),
              keyPath: "loadBalancers[0].natAddresses", problem: "none lies in a vSwitch of the backup zone"),
        .init(rule: "a NAT address outside the backup zone",
              yaml: withBackup.replacingOccurrences(of: "[192.168.24.240, 192.168.23.241]", with: "[192.168.23.241]"),
              keyPath: "loadBalancers[0].natAddresses", problem: "all lie in the backup zone"),
        .init(rule: "not for the kernel data path",
              yaml: withBackup.replacingOccurrences(of: "zoneAffinity: true", with: "zoneAffinity: true\n    dataPlane: kernel"),
              keyPath: "loadBalancers[0].backupZone", problem: "kernel data path"),
        .init(rule: "a string", yaml: withBackup.replacingOccurrences(of: "backupZone: eu-central-1a", with: "backupZone: [a]"),
              keyPath: "loadBalancers[0].backupZone", problem: "non-empty string"),
    ]

    @Test(arguments: refused) func refusedByKeyPath(_ broken: BrokenConfig) {
        expectIssue(broken)
    }

    @Test func withoutHostsOnlyAShiftMakesAZoneUnavailable() throws {
        #expect(try catalog().unavailableZones(liveElsewhere: nil).isEmpty)
        #expect(try catalog().unavailableZones(liveElsewhere: []).isEmpty)
        let shifted = try catalog(shifted: ["eu-central-1b"])
        #expect(shifted.unavailableZones(liveElsewhere: nil) == ["eu-central-1b"])
        #expect(shifted.balancerFailover(unavailable: ["eu-central-1b"]).moved == ["clb-1b": "eu-central-1a"])
    }

    @Test func aZoneNoLiveHostCarriesIsUnavailable() throws {
        let hostA = try catalog(host: "host: {id: gw-a, zones: [eu-central-1a]}")
        // Nothing heard from the store yet: the others are assumed there.
        #expect(hostA.unavailableZones(liveElsewhere: nil).isEmpty)
        #expect(hostA.unavailableZones(liveElsewhere: []) == ["eu-central-1b"])
        #expect(hostA.unavailableZones(liveElsewhere: ["eu-central-1b"]).isEmpty)
        let peers = [PeerBeat(host: "gw-b", zones: ["eu-central-1b"], unhealthy: [], age: .seconds(3))]
        #expect(hostA.liveZonesElsewhere(peers: peers, lease: .seconds(10)) == ["eu-central-1b"])
        #expect(hostA.liveZonesElsewhere(peers: peers, lease: .seconds(2)).isEmpty)
        // A shift counts as well, even for a zone this host carries.
        let shiftedA = try catalog(host: "host: {id: gw-a, zones: [eu-central-1a]}", shifted: ["eu-central-1a"])
        #expect(shiftedA.unavailableZones(liveElsewhere: ["eu-central-1b"]) == ["eu-central-1a"])
    }

    @Test func aBalancerMovesOnlyWhileItsZoneIsDownAndTheBackupIsUp() throws {
        let catalog = try catalog()
        #expect(catalog.balancerFailover(unavailable: []) == .allHome)
        #expect(catalog.balancerFailover(unavailable: ["eu-central-1b"]).moved == ["clb-1b": "eu-central-1a"])
        // Both down: nowhere better to go.
        #expect(catalog.balancerFailover(unavailable: ["eu-central-1a", "eu-central-1b"]) == .allHome)
        // The backup zone down alone moves nothing; clb-1a has no backup zone.
        #expect(catalog.balancerFailover(unavailable: ["eu-central-1a"]) == .allHome)
    }

    @Test func theResourcesENIsLiveInTheBackupZoneWhileMoved() throws {
        let catalog = try catalog()
        let moved = catalog.balancerFailover(unavailable: ["eu-central-1b"])
        #expect(catalog.relocatedENIs(.allHome).isEmpty)
        #expect(catalog.relocatedENIs(moved) == [zoneB1: "eu-central-1a", zoneB3: "eu-central-1a"])
        let endpoint = try #require(catalog.endpoints.first { $0.id == "ep-consumer1" })
        #expect(catalog.servingZone(of: zoneA1, endpoint: endpoint, failover: moved) == "eu-central-1a")
    }

    @Test func natAddressesAreSplitBetweenTheZones() throws {
        let catalog = try catalog()
        let clb = try #require(catalog.loadBalancer("clb-1b"))
        let moved = catalog.balancerFailover(unavailable: ["eu-central-1b"])
        #expect(catalog.natAddresses(of: clb, failover: .allHome) == [IPv4Address("192.168.24.240")!])
        #expect(catalog.natAddresses(of: clb, failover: moved) == [IPv4Address("192.168.23.241")!])
        let without = try #require(catalog.loadBalancer("clb-1a"))
        #expect(catalog.natAddresses(of: without, failover: moved) == without.natAddresses)
    }

    @Test func theBackupZonesHostOpensAndJudgesTheMovedENIs() throws {
        let hostA = try catalog(host: "host: {id: gw-a, zones: [eu-central-1a]}")
        let hostB = try catalog(host: "host: {id: gw-b, zones: [eu-central-1b]}")
        let moved = hostA.balancerFailover(unavailable: ["eu-central-1b"])
        #expect(hostA.carriedENIs(.allHome) == [zoneA1])
        #expect(Set(hostA.carriedENIs(moved)) == [zoneA1, zoneB1, zoneB3])
        #expect(hostB.carriedENIs(moved).isEmpty)
        // Host b silent: without the move its zone's ENIs are unhealthy here; moved, host a
        // carries them and judges them itself.
        #expect(hostA.unhealthyElsewhere(peers: [], lease: .seconds(10)) == [zoneB1, zoneB3])
        #expect(hostA.unhealthyElsewhere(peers: [], lease: .seconds(10), failover: moved).isEmpty)
    }

    /// What `health` shows an operator: home, shifted away with nowhere to go, or failed over
    /// to the backup zone, with the zone each serves from.
    @Test func healthReadsWhereBalancersAndENIsServeFrom() throws {
        let shiftedB = try catalog(shifted: ["eu-central-1b"])
        let moved = shiftedB.balancerFailover(unavailable: ["eu-central-1b"])
        let clb1b = try #require(shiftedB.loadBalancer("clb-1b"))
        let endpoint = try #require(shiftedB.endpoints.first { $0.id == "ep-consumer1" })
        #expect(shiftedB.placement(of: clb1b, failover: moved) == ServingPlacement(state: .failedOver, servingZone: "eu-central-1a"))
        #expect(shiftedB.placement(of: zoneB1, endpoint: endpoint, failover: moved) == ServingPlacement(state: .failedOver, servingZone: "eu-central-1a"))
        #expect(shiftedB.placement(of: zoneA1, endpoint: endpoint, failover: moved) == ServingPlacement(state: .home, servingZone: "eu-central-1a"))
        // Without a backup zone, a shifted zone's balancer and ENIs stay where they are, out of service.
        let plain = try catalog(baseConfig, shifted: ["eu-central-1b"])
        let plainFailover = plain.failoverByShifts
        let plainEndpoint = try #require(plain.endpoints.first { $0.id == "ep-consumer1" })
        #expect(plain.placement(of: try #require(plain.loadBalancer("clb-1b")), failover: plainFailover)
                == ServingPlacement(state: .shiftedAway, servingZone: "eu-central-1b"))
        #expect(plain.placement(of: zoneB1, endpoint: plainEndpoint, failover: plainFailover)
                == ServingPlacement(state: .shiftedAway, servingZone: "eu-central-1b"))
        // Nothing shifted, every host live: all home.
        let home = try catalog()
        #expect(home.placement(of: clb1b, failover: .allHome) == ServingPlacement(state: .home, servingZone: "eu-central-1b"))
        #expect(home.placement(of: zoneB1, endpoint: endpoint, failover: .allHome) == ServingPlacement(state: .home, servingZone: "eu-central-1b"))
    }
}
