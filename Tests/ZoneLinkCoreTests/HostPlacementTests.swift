import Testing
@testable import ZoneLinkCore

/// `host:`: what one host of several carries, and what the validator refuses.
@Suite("Host placement (host: id, zones, vpcs)")
struct HostPlacementTests {
    func catalog(_ yaml: String) throws -> Catalog {
        try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t")
    }

    @Test func withoutTheKeyAHostCarriesEverything() throws {
        let catalog = try catalog(baseConfig)
        #expect(catalog.host == nil)
        #expect(catalog.carriedENIs == catalog.endpoints.flatMap(\.eniIDs))
        #expect(catalog.carries(zone: "eu-central-1b", vpc: "vpc-3") && catalog.carries(vpc: "vpc-2"))
    }

    @Test func aHostOfZoneAJudgesOnlyZoneAsENIs() throws {
        let catalog = try catalog("host: {id: gw-a, zones: [eu-central-1a]}\n" + baseConfig)
        #expect(catalog.host == HostPlacement(id: "gw-a", zones: ["eu-central-1a"]))
        #expect(catalog.carriedENIs == [ENIID(endpoint: "ep-consumer1", zone: "eu-central-1a")])
        #expect(catalog.carries(zone: "eu-central-1a", vpc: "vpc-1") && !catalog.carries(zone: "eu-central-1b", vpc: "vpc-1"))
        #expect(catalog.carries(vpc: "vpc-3"))
    }

    @Test func aHostOfSomeVPCsLeavesTheOthersNamespacesAlone() throws {
        let catalog = try catalog("host: {id: gw-1, vpcs: [vpc-1, vpc-2]}\n" + baseConfig)
        #expect(catalog.carriedENIs.allSatisfy { $0.endpoint == "ep-consumer1" } && catalog.carriedENIs.count == 2)
        #expect(!catalog.carries(vpc: "vpc-3") && !catalog.carries(zone: "eu-central-1b", vpc: "vpc-3"))
    }

    @Test(arguments: [
        ("host: {zones: [eu-central-1a]}", "host.id", "is missing"),
        ("host: {id: GW_A}", "host.id", "is not a host name"),
        ("host: {id: gw-a, zones: []}", "host.zones", "carry no zone"),
        ("host: {id: gw-a, zones: [eu-central-1z]}", "host.zones[0]", "no zone of a vSwitch or load balancer"),
        ("host: {id: gw-a, zones: [eu-central-1a, eu-central-1a]}", "host.zones[1]", "declared twice"),
        ("host: {id: gw-a, vpcs: [vpc-9]}", "host.vpcs[0]", "unknown VPC 'vpc-9'"),
        ("host: {id: gw-a, vpcs: []}", "host.vpcs", "carry no VPC"),
        ("host: {id: gw-a, name: x}", "host.name", "unknown key"),
    ])
    func badPlacementsAreRefusedByKey(line: String, keyPath: String, problem: String) {
        let found = issues(line + "\n" + baseConfig)
        #expect(found.contains { $0.keyPath == keyPath && $0.problem.contains(problem) }, "\(line): got \(found)")
    }
}

/// Heartbeats: which ENIs other hosts make unhealthy on this one.
@Suite("Health from other hosts' heartbeats")
struct PeerHealthTests {
    let lease = Duration.seconds(10)
    let zoneB1 = ENIID(endpoint: "ep-consumer1", zone: "eu-central-1b")
    let zoneB3 = ENIID(endpoint: "ep-consumer3", zone: "eu-central-1b")

    func hostA() throws -> Catalog {
        try Catalog(configuration: Configuration.parse(yaml: "host: {id: gw-a, zones: [eu-central-1a]}\n" + baseConfig, file: "t"), file: "t")
    }

    func peerB(age: Duration = .seconds(1), unhealthy: [ENIID] = []) -> PeerBeat {
        PeerBeat(host: "gw-b", zones: ["eu-central-1b"], unhealthy: unhealthy, age: age)
    }

    @Test func aZoneNoLiveHostCarriesIsUnhealthy() throws {
        let catalog = try hostA()
        #expect(catalog.unhealthyElsewhere(peers: [], lease: lease) == [zoneB1, zoneB3])
        #expect(catalog.unhealthyElsewhere(peers: [peerB()], lease: lease).isEmpty)
        // Silent past the lease: down. Exactly at the lease: still alive.
        #expect(catalog.unhealthyElsewhere(peers: [peerB(age: .seconds(11))], lease: lease) == [zoneB1, zoneB3])
        #expect(catalog.unhealthyElsewhere(peers: [peerB(age: .seconds(10))], lease: lease).isEmpty)
    }

    @Test func aLiveHostsReportCountsForItsOwnZonesOnly() throws {
        let catalog = try hostA()
        #expect(catalog.unhealthyElsewhere(peers: [peerB(unhealthy: [zoneB3])], lease: lease) == [zoneB3])
        // Host b has no say over zone a, which this host carries and judges itself.
        let zoneA = ENIID(endpoint: "ep-consumer1", zone: "eu-central-1a")
        #expect(catalog.unhealthyElsewhere(peers: [peerB(unhealthy: [zoneA])], lease: lease).isEmpty)
        // A beat under this host's own name (a copy of its config elsewhere) is not a peer.
        let twin = PeerBeat(host: "gw-a", zones: ["eu-central-1b"], unhealthy: [], age: .seconds(1))
        #expect(catalog.unhealthyElsewhere(peers: [twin], lease: lease) == [zoneB1, zoneB3])
    }

    @Test func aHostThatCarriesEveryZoneHearsNoOne() throws {
        let catalog = try Catalog(configuration: Configuration.parse(yaml: baseConfig, file: "t"), file: "t")
        #expect(catalog.unhealthyElsewhere(peers: [peerB(unhealthy: [zoneB3])], lease: lease).isEmpty)
        let vpcsOnly = try Catalog(configuration: Configuration.parse(yaml: "host: {id: gw-1, vpcs: [vpc-1, vpc-2]}\n" + baseConfig, file: "t"), file: "t")
        #expect(vpcsOnly.unhealthyElsewhere(peers: [], lease: lease).isEmpty)
    }
}
