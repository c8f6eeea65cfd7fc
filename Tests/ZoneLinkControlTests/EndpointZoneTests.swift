import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

/// `endpoint zone add|remove`: an endpoint gains and loses ENIs without being recreated.
@Suite("Endpoint zones: add and remove")
struct EndpointZoneTests {
    /// The seed, with the service offered in zones a (clb-1a) and b, and A's endpoint in b.
    static func twoZoneWorld() throws -> ControlPlane {
        var service = seedService
        service.resources.append(ServiceResourceSpec(zone: "eu-central-1a", loadBalancer: "clb-1a"))
        var p = try plane()
        p = try p.createService(service, by: provider).plane
        p = try p.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider).plane
        return try p.createEndpoint(seedEndpoint, by: consumer).plane
    }

    @Test func addingAZoneAllocatesItsENIAndNamesIt() throws {
        let start = try Self.twoZoneWorld()
        let applied = try start.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a"), by: consumer)
        #expect(applied.value.zones == ["eu-central-1a", "eu-central-1b"] || applied.value.zones == ["eu-central-1b", "eu-central-1a"])
        let eni = try #require(applied.value.placement?.enis.first { $0.zone == "eu-central-1a" })
        #expect(eni.address.hasPrefix("10.10.1.") && eni.vswitch == "vsw-1a")
        #expect(eni.dnsName.hasPrefix("ep-consumer1-eu-central-1a.epsrv-frankfurt1."))
        // The allocated address is recorded: the ENI keeps it whatever is added later.
        let record = try #require(applied.state.endpoint("ep-consumer1"))
        #expect(record.zones.first { $0.zone == "eu-central-1a" }?.address?.description == eni.address)
        try expectConsistent(start, applied)
    }

    @Test func removingAZoneKeepsTheOthers() throws {
        let two = try Self.twoZoneWorld().addEndpointZone(
            "ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a", address: "10.10.1.9"), by: consumer).plane
        let applied = try two.removeEndpointZone("ep-consumer1", zone: "eu-central-1a", by: .operator)
        #expect(applied.value.zones == ["eu-central-1b"])
        #expect(applied.catalog.endpoints.first { $0.id == "ep-consumer1" }?.enis.map(\.zone) == ["eu-central-1b"])
        try expectConsistent(two, applied)
    }

    @Test func theLastZoneStays() throws {
        let world = try Self.twoZoneWorld()
        let failure = error { try world.removeEndpointZone("ep-consumer1", zone: "eu-central-1b", by: consumer) }
        guard case .conflict(let message) = failure else { Issue.record("expected a conflict, got \(String(describing: failure))"); return }
        #expect(message.contains("last zone") && message.contains("delete the endpoint instead"), "\(message)")
    }

    @Test func refusalsNameTheRuleAndChangeNothing() throws {
        let world = try Self.twoZoneWorld()
        let cases: [(String, () throws -> Applied<EndpointView>, Outcome, String)] = [
            ("zone of no service resource", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1c", vswitch: "vsw-1c"), by: consumer) }, .invalid, "zone"),
            ("vSwitch of another zone", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1b"), by: consumer) }, .invalid, "vswitch"),
            ("not an address", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a", address: "10.10.1"), by: consumer) }, .invalid, "address"),
            ("an address outside the vSwitch", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a", address: "10.10.2.9"), by: consumer) }, .invalid, "address"),
            ("a zone it has", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b"), by: consumer) }, .conflict, ""),
            ("the provider adds", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a"), by: provider) }, .forbidden, ""),
            ("a stranger adds", { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a"), by: stranger) }, .notFound, ""),
            ("an unknown endpoint", { try world.removeEndpointZone("ep-none", zone: "eu-central-1b", by: consumer) }, .notFound, ""),
            ("a zone it lacks", { try world.removeEndpointZone("ep-consumer1", zone: "eu-central-1a", by: consumer) }, .notFound, ""),
            ("the provider removes", { try world.removeEndpointZone("ep-consumer1", zone: "eu-central-1b", by: provider) }, .forbidden, ""),
        ]
        for (what, body, expected, keyPath) in cases {
            let failure = error(body)
            #expect(Outcome(failure) == expected, "\(what): \(String(describing: failure))")
            if expected == .invalid { #expect(failure?.issues.first?.keyPath == keyPath, "\(what): \(String(describing: failure))") }
            #expect(failure.map { !$0.message.isEmpty } ?? false, "\(what)")
        }
    }

    @Test func fileDeclaredEndpointsAreChangedInTheFile() throws {
        let world = try plane(fileDeclaredYAML)
        let failure = error { try world.addEndpointZone("ep-consumer1", ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a"), by: .operator) }
        #expect(Outcome(failure) == .fileManaged, "\(String(describing: failure))")
    }
}

/// `connectionBandwidth` through the API: set at creation, changed and lifted live, the
/// file's rule for the range.
@Suite("Service bandwidth cap through the control plane")
struct ServiceBandwidthTests {
    @Test func setChangedAndLifted() throws {
        var service = seedService
        service.connectionBandwidth = 50
        let created = try plane().createService(service, by: provider)
        #expect(created.value.connectionBandwidth == 50 && created.catalog.service("epsrv-frankfurt1")?.connectionBandwidth == 50)
        let raised = try created.plane.updateService("epsrv-frankfurt1", UpdateServiceRequest(connectionBandwidth: 200), by: provider)
        #expect(raised.catalog.service("epsrv-frankfurt1")?.connectionBandwidth == 200)
        try expectConsistent(created.plane, raised)
        let lifted = try raised.plane.updateService("epsrv-frankfurt1", UpdateServiceRequest(removeConnectionBandwidth: true), by: provider)
        #expect(lifted.catalog.service("epsrv-frankfurt1")?.connectionBandwidth == nil && lifted.value.connectionBandwidth == nil)
        // Consumers see services, not their provider's settings.
        let p = try lifted.plane.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider).plane
        #expect(try p.service("epsrv-frankfurt1", by: consumer).connectionBandwidth == nil)
    }

    @Test func capsOutsideTheRangeAreRefusedByName() throws {
        for cap in [0, -5, 100_001] {
            var service = seedService
            service.connectionBandwidth = cap
            let failure = error { try plane().createService(service, by: provider) }
            #expect(failure?.issues.map(\.keyPath) == ["connectionBandwidth"], "\(cap): \(String(describing: failure))")
            #expect(failure?.message.contains("not a bandwidth cap") == true)
        }
        let world = try plane().createService(seedService, by: provider).plane
        #expect(Outcome(error { try world.updateService("epsrv-frankfurt1", UpdateServiceRequest(connectionBandwidth: 0), by: provider) }) == .invalid)
        #expect(Outcome(error {
            try world.updateService("epsrv-frankfurt1", UpdateServiceRequest(connectionBandwidth: 10, removeConnectionBandwidth: true), by: provider)
        }) == .invalid)
        #expect(Outcome(error { try world.updateService("epsrv-frankfurt1", UpdateServiceRequest(connectionBandwidth: 10), by: consumer) }) == .notFound)
    }
}

/// `dataPlane` through the API: chosen at creation or changed, shown to the provider, and
/// refused (by the catalog's rule, with its key path) together with PROXY protocol or a cap.
@Suite("Service data plane through the control plane")
struct ServiceDataPlaneTests {
    @Test func chosenShownAndChanged() throws {
        var service = seedService
        service.dataPlane = .kernel
        let created = try plane().createService(service, by: provider)
        #expect(created.value.dataPlane == .kernel && created.catalog.service("epsrv-frankfurt1")?.dataPlane == .kernel)
        let back = try created.plane.updateService("epsrv-frankfurt1", UpdateServiceRequest(dataPlane: .relay), by: provider)
        #expect(back.catalog.service("epsrv-frankfurt1")?.dataPlane == .relay && back.value.dataPlane == .relay)
        let plain = try plane().createService(seedService, by: provider)
        #expect(plain.value.dataPlane == .relay, "relay unless asked")
    }

    @Test func kernelWithProxyProtocolOrCapIsRefused() throws {
        var proxied = seedService
        proxied.dataPlane = .kernel
        proxied.proxyProtocol = true
        let failure = error { try plane().createService(proxied, by: provider) }
        #expect(Outcome(failure) == .invalid && failure?.issues.contains { $0.keyPath.hasSuffix("dataPlane") && $0.problem.contains("PROXY protocol") } == true,
                "\(String(describing: failure))")
        var capped = seedService
        capped.connectionBandwidth = 50
        let world = try plane().createService(capped, by: provider).plane
        let update = error { try world.updateService("epsrv-frankfurt1", UpdateServiceRequest(dataPlane: .kernel), by: provider) }
        #expect(Outcome(update) == .invalid && update?.issues.contains { $0.problem.contains("cannot cap connectionBandwidth") } == true,
                "\(String(describing: update))")
    }
}
