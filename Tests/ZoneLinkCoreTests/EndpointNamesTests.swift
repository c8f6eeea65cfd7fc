import Testing
import ZoneLinkCore

/// The generated names and the ENI identity, spelled once for DNS, the control API and the validator.
@Suite("Endpoint names")
struct EndpointNamesTests {
    let names = EndpointNames(region: "EU-Central-1", domain: "PrivateLink.internal")

    @Test func serviceNameIsTheServiceUnderRegionAndDomain() {
        #expect(names.regionName == "eu-central-1.privatelink.internal")
        #expect(names.service("epsrv-Frankfurt1") == "epsrv-frankfurt1.eu-central-1.privatelink.internal")
    }

    @Test func endpointNameIsTheEndpointUnderItsService() {
        #expect(names.endpoint("ep-Consumer1", service: "epsrv-frankfurt1")
            == "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal")
    }

    @Test func eniNameAddsTheZoneToTheEndpointLabel() {
        let eni = ENIID(endpoint: "ep-consumer1", zone: "eu-central-1B")
        #expect(EndpointNames.zonalLabel(eni) == "ep-consumer1-eu-central-1b")
        #expect(names.eni(eni, service: "epsrv-frankfurt1")
            == "ep-consumer1-eu-central-1b.epsrv-frankfurt1.eu-central-1.privatelink.internal")
    }

    @Test func endpointNamesItsENIsByIdentity() {
        let endpoint = Endpoint(
            id: "ep-a", account: "1111111111111111", service: "epsrv-s", vpc: "vpc-1",
            enis: [ENI(zone: "eu-central-1a", vswitch: "vsw-1a"), ENI(zone: "eu-central-1b", vswitch: "vsw-1b")])
        #expect(endpoint.eniIDs == [ENIID(endpoint: "ep-a", zone: "eu-central-1a"), ENIID(endpoint: "ep-a", zone: "eu-central-1b")])
        #expect(endpoint.dnsName(names) == "ep-a.epsrv-s.eu-central-1.privatelink.internal")
        #expect(endpoint.dnsName(of: endpoint.enis[1], names) == "ep-a-eu-central-1b.epsrv-s.eu-central-1.privatelink.internal")
    }

    @Test func eniIDTextFormRoundTrips() {
        let eni = ENIID(endpoint: "ep-a", zone: "eu-central-1a")
        #expect(eni.description == "ep-a/eu-central-1a")
        #expect(ENIID("ep-a/eu-central-1a") == eni)
        #expect(ENIID("ep-a") == nil && ENIID("ep-a/") == nil && ENIID("a/b/c") == nil)
    }
}
