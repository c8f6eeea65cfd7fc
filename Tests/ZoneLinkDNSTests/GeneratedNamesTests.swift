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
}
