import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// The engine builds endpoint and ENI names from their labels; `EndpointNames` spells the same
/// names as text for the control API and the validator. Both must be the same names.
@Suite("Generated names, built from labels")
struct GeneratedNamesTests {
    @Test func namesBuiltFromLabelsAreTheNamesSpelledAsText() throws {
        // Mixed case in IDs, zones, region and domain: names are stored in lower case.
        let yaml = engineConfig
            .replacingOccurrences(of: "id: ep-aff", with: "id: ep-AFF")
            .replacingOccurrences(of: "service: epsrv-aff", with: "service: epsrv-Aff")
            .replacingOccurrences(of: "id: epsrv-aff", with: "id: epsrv-Aff")
        let catalog = try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t")
        let names = GeneratedNames(catalog: catalog)
        #expect(catalog.endpoints.contains { $0.id == "ep-AFF" })
        for endpoint in catalog.endpoints {
            #expect(names.endpointName(endpoint) == DNSName(endpoint.dnsName(names.names))!)
            #expect(names.endpointName(endpoint).description == endpoint.dnsName(names.names) + ".")
            for eni in endpoint.enis {
                #expect(names.zonalName(endpoint, eni: eni) == DNSName(endpoint.dnsName(of: eni, names.names))!)
            }
        }
        for service in catalog.services {
            #expect(names.serviceName(service.id) == DNSName(names.names.service(service.id))!)
        }
    }

    @Test func aLabelPastItsLimitIsRefused() {
        let apex = DNSName("example.internal")!
        #expect(apex.prepending(label: String(repeating: "a", count: 63).utf8)?.description == String(repeating: "a", count: 63) + ".example.internal.")
        #expect(apex.prepending(label: String(repeating: "a", count: 60).utf8, "-".utf8, "abc".utf8) == nil)
        #expect(apex.prepending(label: "".utf8) == nil)
    }

    /// A view's names go on top of the zone every view shares: added names answer, names two
    /// records of one call share are merged, the names above an added one exist (NODATA, not
    /// NXDOMAIN), the shared names still answer, and the shared zone itself is unchanged.
    @Test func namesAddedOnTopOfASharedZone() throws {
        let apex = DNSName("example.internal")!
        var soa = DNSName("ns.example.internal")!.wire + DNSName("hostmaster.example.internal")!.wire
        soa += [0, 0, 0, 1, 0, 0, 14, 16, 0, 0, 2, 88, 0, 1, 81, 128, 0, 0, 0, 60]
        func a(_ last: UInt8) -> RRset { RRset(type: .a, ttl: 60, rdata: [[10, 0, 0, last]]) }
        let shared = try #require(Zone(apex: apex, records: [
            (apex, RRset(type: .soa, ttl: 60, rdata: [soa])), (DNSName("www.example.internal")!, a(1)),
        ]))
        let view = try #require(shared.adding([
            (DNSName("svc.deep.example.internal")!, a(2)), (DNSName("svc.deep.example.internal")!, a(3)),
        ]))
        let added = view.answer(DNSName("svc.deep.example.internal")!, .a)
        #expect(added.rcode == .noError && added.answer.first?.records == [[10, 0, 0, 2], [10, 0, 0, 3]])
        let above = view.answer(DNSName("deep.example.internal")!, .a)
        #expect(above.rcode == .noError && above.answer.isEmpty)
        #expect(view.answer(DNSName("www.example.internal")!, .a).answer.first?.records == [[10, 0, 0, 1]])
        #expect(shared.answer(DNSName("svc.deep.example.internal")!, .a).rcode == .nxDomain)
        #expect(Set(view.owners) == Set(shared.owners + [DNSName("svc.deep.example.internal")!, DNSName("deep.example.internal")!]))
    }

    /// The answers prepared while every ENI is healthy (worked out directly, once per name at
    /// start and reload) are the ones `ZoneAffinity.choose` gives, for every client zone, with
    /// affinity on and off, for ENI lists in any order and with several ENIs in one zone.
    @Test func answersPreparedWhileHealthyAreTheChosenOnes() {
        let zones = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
        var generator = SystemRandomNumberGenerator()
        for round in 0..<300 {
            let enis = (0..<Int.random(in: 1...6, using: &generator)).map { i in
                ENIID(endpoint: "ep-\(round)-\(i)", zone: zones.randomElement(using: &generator)!)
            }
            let rdata = enis.indices.map { [10, 0, UInt8(round % 250), UInt8($0)] }
            for affinity in [true, false] {
                var selection = ENISelection(enis: enis, zoneAffinity: affinity)
                selection.answerWhileHealthy(rdata)
                for client in zones + ["eu-central-1z"] as [String?] + [nil] {
                    let chosen = ZoneAffinity.choose(enis, clientZone: client, affinity: affinity, health: .allHealthy).map { rdata[$0] }
                    #expect(selection.answerWhileHealthy(clientZone: client) == chosen, "\(enis) affinity \(affinity) client \(client ?? "none")")
                }
            }
        }
    }
}
