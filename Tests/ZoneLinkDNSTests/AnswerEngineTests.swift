import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// Two consumer VPCs and one provider: ep-aff (affinity on) and ep-off (affinity off) in vpc-1,
/// each with an ENI in zones a (10.10.1.x) and b (10.10.2.x); vpc-9 has no endpoint.
let engineConfig = """
    region: eu-central-1
    domain: privatelink.internal
    dns:
      privateDomainSuffixes: [provider.example]
    accounts:
      - {id: "1111111111111111", name: a}
      - {id: "2222222222222222", name: b}
    vpcs:
      - id: vpc-1
        account: a
        cidr: 10.10.0.0/16
        netns: vpc1
        vswitches:
          - {id: vsw-1a, zone: eu-central-1a, cidr: 10.10.1.0/24}
          - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}
      - id: vpc-9
        account: a
        cidr: 10.10.0.0/16
        netns: vpc9
        vswitches:
          - {id: vsw-9a, zone: eu-central-1a, cidr: 10.10.1.0/24}
      - id: vpc-2
        account: b
        cidr: 192.168.0.0/16
        netns: vpc2
        vswitches:
          - {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}
          - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
    loadBalancers:
      - {id: clb-a, account: b, vpc: vpc-2, zone: eu-central-1a, natAddresses: [192.168.23.240], address: 192.168.23.100, listeners: [{protocol: tcp, port: 80}]}
      - {id: clb-b, account: b, vpc: vpc-2, zone: eu-central-1b, natAddresses: [192.168.24.240], address: 192.168.24.100, listeners: [{protocol: tcp, port: 80}]}
    endpointServices:
      - id: epsrv-aff
        account: b
        resources: [{zone: eu-central-1a, loadBalancer: clb-a}, {zone: eu-central-1b, loadBalancer: clb-b}]
        zoneAffinity: true
        whitelist: ["1111111111111111"]
        privateDomain: api.provider.example
      - id: epsrv-off
        account: b
        resources: [{zone: eu-central-1a, loadBalancer: clb-a}, {zone: eu-central-1b, loadBalancer: clb-b}]
        zoneAffinity: false
        whitelist: ["1111111111111111"]
    endpoints:
      - id: ep-aff
        account: a
        service: epsrv-aff
        vpc: vpc-1
        zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.10}, {zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.10}]
      - id: ep-off
        account: a
        service: epsrv-off
        vpc: vpc-1
        zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.20}, {zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.20}]
    """

let suffix = "eu-central-1.privatelink.internal"

func makeEngine() throws -> AnswerEngine {
    let catalog = try Catalog(configuration: Configuration.parse(yaml: engineConfig, file: "t"), file: "t")
    return AnswerEngine(catalog: catalog, staticZones: [try ZoneFile.load(path: "\(packageRoot)/zones/example.internal.zone")])
}

/// The addresses in an answer section, in order.
func addresses(_ answer: Answer) -> [String] {
    answer.answer.filter { $0.rrset.type == .a }.flatMap { $0.records.map { $0.map(String.init).joined(separator: ".") } }
}

func ask(_ engine: AnswerEngine, _ name: String, _ type: RRType = .a, vpc: String? = "vpc-1", zone: String? = nil, health: ZoneHealth = .allHealthy) -> Answer {
    engine.answer(parsedQuery(queryMessage(name, type))!, vpc: vpc, clientZone: zone, health: health)
}

@Suite("Zone affinity")
struct AffinityTests {
    let engine: AnswerEngine
    init() throws { engine = try makeEngine() }

    @Test func affinityOnAnswersTheClientsZoneOnly() {
        #expect(addresses(ask(engine, "ep-aff.epsrv-aff.\(suffix)", zone: "eu-central-1a")) == ["10.10.1.10"])
        #expect(addresses(ask(engine, "ep-aff.epsrv-aff.\(suffix)", zone: "eu-central-1b")) == ["10.10.2.10"])
    }

    @Test func affinityOnWithTheClientsZoneUnhealthyFallsBack() {
        let health = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a")])
        #expect(addresses(ask(engine, "ep-aff.epsrv-aff.\(suffix)", zone: "eu-central-1a", health: health)) == ["10.10.2.10"])
    }

    @Test func affinityOffAnswersEveryHealthyENISameZoneFirst() {
        #expect(addresses(ask(engine, "ep-off.epsrv-off.\(suffix)", zone: "eu-central-1b")) == ["10.10.2.20", "10.10.1.20"])
        #expect(addresses(ask(engine, "ep-off.epsrv-off.\(suffix)", zone: "eu-central-1a")) == ["10.10.1.20", "10.10.2.20"])
        let health = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-off", zone: "eu-central-1a")])
        #expect(addresses(ask(engine, "ep-off.epsrv-off.\(suffix)", zone: "eu-central-1a", health: health)) == ["10.10.2.20"])
    }

    @Test func noHealthyENIAnswersEveryENI() {
        let health = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a"), ENIID(endpoint: "ep-aff", zone: "eu-central-1b")])
        #expect(addresses(ask(engine, "ep-aff.epsrv-aff.\(suffix)", zone: "eu-central-1b", health: health)) == ["10.10.2.10", "10.10.1.10"])
    }

    @Test func unknownClientZoneAnswersEveryHealthyENI() {
        #expect(addresses(ask(engine, "ep-aff.epsrv-aff.\(suffix)", zone: nil)) == ["10.10.1.10", "10.10.2.10"])
        let health = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1b")])
        #expect(addresses(ask(engine, "ep-aff.epsrv-aff.\(suffix)", zone: nil, health: health)) == ["10.10.1.10"])
    }

    @Test func perZoneNamesIgnoreAffinityAndHealth() {
        let health = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1b")])
        #expect(addresses(ask(engine, "ep-aff-eu-central-1b.epsrv-aff.\(suffix)", zone: "eu-central-1a", health: health)) == ["10.10.2.10"])
    }
}

@Suite("Generated names")
struct GeneratedNameTests {
    let engine: AnswerEngine
    init() throws { engine = try makeEngine() }

    @Test func serviceNameAnswersInAVPCWithAnEndpoint() {
        let answer = ask(engine, "epsrv-aff.\(suffix)", zone: "eu-central-1b")
        #expect(answer.rcode == .noError && answer.authoritative)
        #expect(addresses(answer) == ["10.10.2.10"])
    }

    @Test func serviceNameIsNoDataElsewhere() {
        for vpc in ["vpc-9", nil] {
            let answer = ask(engine, "epsrv-aff.\(suffix)", vpc: vpc)
            #expect(answer.rcode == .noError && answer.answer.isEmpty && answer.authority.first?.rrset.type == .soa)
        }
    }

    @Test func privateDomainIsSplitHorizon() {
        #expect(addresses(ask(engine, "api.provider.example", zone: "eu-central-1a")) == ["10.10.1.10"])
        #expect(ask(engine, "api.provider.example", vpc: "vpc-9").rcode == .refused)
        #expect(ask(engine, "api.provider.example", vpc: nil).rcode == .refused)
    }

    @Test func negativeAnswersCarryTheSOA() {
        let nx = ask(engine, "ep-nope.epsrv-aff.\(suffix)")
        #expect(nx.rcode == .nxDomain && nx.authoritative && nx.authority.first?.rrset.type == .soa)
        #expect(nx.authority.first?.owner == DNSName("privatelink.internal"))
        let nodata = ask(engine, "ep-aff.epsrv-aff.\(suffix)", .aaaa)
        #expect(nodata.rcode == .noError && nodata.answer.isEmpty && nodata.authority.first?.rrset.type == .soa)
        let ent = ask(engine, suffix)
        #expect(ent.rcode == .noError && ent.answer.isEmpty)
    }

    @Test func apexHasSOAAndNS() {
        #expect(ask(engine, "privatelink.internal", .soa).answer.first?.rrset.type == .soa)
        #expect(ask(engine, "PrivateLink.Internal", .ns).answer.first?.rrset.targets == [DNSName("ns.privatelink.internal")!])
    }

    @Test func namesOutsideEveryZoneAndOtherClassesAreRefused() {
        #expect(ask(engine, "example.com").rcode == .refused)
        let chaos = engine.answer(parsedQuery(queryMessage("privatelink.internal", .soa, qclass: 3))!, vpc: nil, clientZone: nil)
        #expect(chaos.rcode == .refused)
    }

    @Test func anyIsAnsweredWithOneRRset() {
        #expect(ask(engine, "privatelink.internal", .any).answer.count == 1)
    }
}

@Suite("Static zones")
struct StaticZoneTests {
    let engine: AnswerEngine
    init() throws { engine = try makeEngine() }

    @Test func cnameIsFollowedInsideTheZone() {
        let answer = ask(engine, "api.example.internal")
        #expect(answer.answer.map(\.rrset.type) == [.cname, .a])
        #expect(addresses(answer) == ["127.0.0.80"])
        #expect(ask(engine, "docs.example.internal").answer.map(\.rrset.type) == [.cname])
    }

    @Test func wildcardsSynthesiseTheQuestionName() {
        let answer = ask(engine, "x.y.apps.example.internal")
        #expect(answer.answer.first?.owner == DNSName("x.y.apps.example.internal"))
        #expect(addresses(answer) == ["127.0.0.90"])
        #expect(ask(engine, "apps.example.internal").answer.isEmpty)
    }

    @Test func delegationsGiveReferrals() {
        let answer = ask(engine, "host.lab.example.internal")
        #expect(!answer.authoritative && answer.answer.isEmpty)
        #expect(answer.authority.first?.rrset.type == .ns)
        #expect(answer.additional.first?.owner == DNSName("ns.lab.example.internal"))
    }

    @Test func zoneFileErrorsNameTheLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UInt32.random(in: 0...UInt32.max)).zone").path
        try "$ORIGIN bad.\n@ 300 IN SOA ns hm 1 2 3 4 5\nwww 300 IN A 999.1.1.1\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ZoneFileError.self) { try ZoneFile.load(path: path) }
        do { _ = try ZoneFile.load(path: path) } catch { #expect(error.line == 3) }
    }
}
