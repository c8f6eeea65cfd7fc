import Foundation
import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkDNS

/// `Responder.explain`: each affinity case says what was decided and why, and the records it
/// shows are the records the responder sends for the same question.
@Suite("DNS explain")
struct ExplainTests {
    let responder: Responder
    let name = "ep-aff.epsrv-aff.\(suffix)"

    init() throws {
        // The engine's walkthrough, with a trusted forwarder for the Client Subnet case.
        let yaml = engineConfig.replacingOccurrences(
            of: "privateDomainSuffixes: [provider.example]", with: "privateDomainSuffixes: [provider.example]\n  trustedForwarders: [10.10.0.53]")
        let catalog = try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t")
        responder = Responder(engine: AnswerEngine(catalog: catalog, staticZones: [try ZoneFile.load(path: "\(packageRoot)/zones/example.internal.zone")]))
    }

    func explain(
        _ name: String, _ type: RRType = .a, vpc: String? = "vpc-1", zone: String? = nil, source: String? = nil, subnet: String? = nil,
        health: ZoneHealth = .allHealthy
    ) -> Explanation {
        Responder(engine: responder.engine, health: health).explain(ExplainQuestion(
            name: DNSName(name)!, type: type, vpc: vpc, listenerZone: zone, source: source.flatMap { IPv4Address($0) },
            clientSubnet: subnet.flatMap { IPv4Prefix($0) }))
    }

    func kept(_ e: Explanation) -> [String] { e.candidates.filter(\.kept).map(\.eni) }

    @Test func clientZoneHealthyKeepsOnlyItsZone() {
        let e = explain(name, source: "10.10.1.7")
        #expect(e.view == "vpc-1" && e.zone == "privatelink.internal." && e.rcode == "NOERROR")
        #expect(e.clientZone == "eu-central-1a" && e.clientZoneFoundBy == "vswitch")
        #expect(kept(e) == ["ep-aff/eu-central-1a"])
        let dropped = e.candidates.first { !$0.kept }
        #expect(dropped?.eni == "ep-aff/eu-central-1b" && dropped?.healthy == true && dropped?.reason.contains("affinity") == true)
        #expect(e.answer.map(normalized) == ["\(name). 60 IN A 10.10.1.10"])
        #expect(e.serial != nil)
    }

    @Test func clientZoneUnhealthyFallsBackToTheOtherZone() {
        let e = explain(name, source: "10.10.1.7", health: ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a")]))
        #expect(kept(e) == ["ep-aff/eu-central-1b"])
        let dropped = e.candidates.first { !$0.kept }
        #expect(dropped?.healthy == false && dropped?.reason.hasPrefix("unhealthy") == true)
        #expect(e.answer.map(normalized) == ["\(name). 60 IN A 10.10.2.10"])
    }

    @Test func noHealthyENIAnswersEvery() {
        let both = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a"), ENIID(endpoint: "ep-aff", zone: "eu-central-1b")])
        let e = explain(name, zone: "eu-central-1b", health: both)
        #expect(e.clientZoneFoundBy == "listener" && kept(e) == ["ep-aff/eu-central-1a", "ep-aff/eu-central-1b"])
        // Answered in the engine's order: the client's zone first.
        #expect(e.answer.map(normalized) == ["\(name). 60 IN A 10.10.2.10", "\(name). 60 IN A 10.10.1.10"])
        #expect(e.candidates.allSatisfy { $0.reason.contains("no ENI of the name is healthy") })
    }

    @Test func unknownClientZoneKeepsEveryHealthyENI() {
        let e = explain(name, source: "10.10.9.9")
        #expect(e.clientZone == nil && e.clientZoneFoundBy == "unknown")
        #expect(kept(e) == ["ep-aff/eu-central-1a", "ep-aff/eu-central-1b"])
    }

    @Test func clientSubnetOfATrustedForwarder() {
        let e = explain(name, source: "10.10.0.53", subnet: "10.10.2.0/24")
        #expect(e.clientZone == "eu-central-1b" && e.clientZoneFoundBy == "clientSubnet")
        #expect(kept(e) == ["ep-aff/eu-central-1b"])
        // From anyone else the subnet is ignored.
        let ignored = explain(name, source: "10.10.9.53", subnet: "10.10.2.0/24")
        #expect(ignored.clientZoneFoundBy == "unknown")
    }

    @Test func namesOutsideEveryZoneAreRefusedAndStaticZonesAnswer() {
        let refused = explain("example.com")
        #expect(refused.zone == nil && refused.rcode == "REFUSED" && refused.answer.isEmpty)
        let nx = explain("nope.example.internal")
        #expect(nx.zone == "example.internal." && nx.rcode == "NXDOMAIN" && nx.authority.count == 1)
        let outside = explain(name, vpc: "vpc-unknown")
        #expect(outside.view == nil && outside.viewNote.contains("not in the catalog"))
    }

    /// The records explain shows are the records the responder sends, for questions across
    /// names, types, VPCs, sources, listener zones and health.
    @Test func agreesWithTheResponderOnGeneratedQuestions() throws {
        var random = SplitMix64(seed: 14)
        let names = [name, "ep-off.epsrv-off.\(suffix)", "epsrv-aff.\(suffix)", "ep-aff-eu-central-1b.epsrv-aff.\(suffix)",
                     "api.provider.example", "www.example.internal", "nope.\(suffix)", "example.com", suffix, "api.example.internal"]
        let types: [RRType] = [.a, .aaaa, .soa, .ns, .txt, .cname, .any]
        let sources = [nil, "10.10.1.7", "10.10.2.200", "10.10.9.1", "127.0.0.1"]
        let healths = [ZoneHealth.allHealthy, ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a")]),
                       ZoneHealth(unhealthy: [ENIID(endpoint: "ep-off", zone: "eu-central-1b"), ENIID(endpoint: "ep-aff", zone: "eu-central-1b")])]
        for _ in 0..<1_000 {
            let (name, type) = (names.randomElement(using: &random)!, types.randomElement(using: &random)!)
            let vpc = ["vpc-1", "vpc-9", "vpc-2", nil].randomElement(using: &random)!
            let zone = [nil, nil, "eu-central-1a", "eu-central-1b"].randomElement(using: &random)!
            let source = sources.randomElement(using: &random)!
            let health = healths.randomElement(using: &random)!
            let e = explain(name, type, vpc: vpc, zone: zone, source: source, health: health)
            let bytes = try #require(respond(
                Responder(engine: responder.engine, health: health), queryMessage(name, type, edns: (4096, 0, false)),
                vpc: vpc, zone: zone, source: source))
            let sent = try #require(decode(bytes))
            let context = "\(name) \(type) vpc \(vpc ?? "-") zone \(zone ?? "-") source \(source ?? "-")"
            #expect(e.rcode.map(rcodeNumber) == sent.rcode, "\(context)")
            #expect(e.answer.map(normalized) == sent.answer, "\(context)")
            #expect(e.authority.map(normalized) == sent.authority, "\(context)")
        }
    }

    func normalized(_ line: String) -> String {
        line.replacingOccurrences(of: "\t", with: " ")
    }

    func rcodeNumber(_ mnemonic: String) -> UInt16 {
        ["NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5][mnemonic] ?? 99
    }
}
