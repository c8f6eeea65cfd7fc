import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

/// The seed walkthrough (README), steps 3 to 6, without sockets.
@Suite("The seed walkthrough, at the pure level")
struct SeedWalkthroughTests {
    @Test func providerCreatesWhitelistsConsumerConnectsProviderAcceptsAndRejects() throws {
        let start = try plane()
        #expect(start.catalog.services.isEmpty && start.catalog.endpoints.isEmpty)

        // Step 3: B creates the endpoint service: zone b on clb-1b, manual accept, zone affinity.
        let created = try start.createService(seedService, by: provider)
        try expectConsistent(start, created)
        #expect(created.changes == [.putService(ServiceRecord(
            id: "epsrv-frankfurt1", account: accountB, resources: seedService.resources, autoAcceptConnections: false,
            zoneAffinity: true))])
        #expect(created.value.origin == .api)
        #expect(created.value.dnsName == "epsrv-frankfurt1.eu-central-1.privatelink.internal")
        #expect(created.catalog.service("epsrv-frankfurt1")?.zoneAffinity == true)

        // A cannot see it yet, nor connect.
        #expect(created.plane.listServices(by: consumer).isEmpty)
        #expect(Outcome(error { try created.plane.createEndpoint(seedEndpoint, by: consumer) }) == .notFound)

        // Step 4: B adds A's account ID to the whitelist.
        let whitelisted = try created.plane.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider)
        try expectConsistent(created.plane, whitelisted)
        #expect(whitelisted.changes == [.addWhitelistEntry(WhitelistRecord(service: "epsrv-frankfurt1", account: accountA))])
        #expect(whitelisted.plane.listServices(by: consumer).map(\.id) == ["epsrv-frankfurt1"])

        // Step 5: A creates the endpoint in VPC 1: Disconnected, an ENI allocated in vsw-1b.
        let endpoint = try whitelisted.plane.createEndpoint(seedEndpoint, by: consumer)
        try expectConsistent(whitelisted.plane, endpoint)
        #expect(endpoint.value.connection == .disconnected)
        #expect(endpoint.value.placement?.enis.map(\.address) == ["10.10.2.4"])
        #expect(endpoint.value.placement?.dnsName == "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal")
        #expect(endpoint.value.placement?.enis.first?.dnsName == "ep-consumer1-eu-central-1b.epsrv-frankfurt1.eu-central-1.privatelink.internal")
        #expect(endpoint.catalog.connection(of: endpoint.catalog.endpoints[0]) == .disconnected)
        #expect(endpoint.changes == [
            .putEndpoint(EndpointRecord(
                id: "ep-consumer1", account: accountA, service: "epsrv-frankfurt1", vpc: "vpc-1", securityGroups: ["sg-1"],
                zones: [ENIRecord(zone: "eu-central-1b", vswitch: "vsw-1b", address: IPv4Address("10.10.2.4"))])),
            .setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: .disconnected)),
        ])

        // B sees the connection waiting.
        let waiting = try endpoint.plane.connections(of: "epsrv-frankfurt1", by: provider)
        #expect(waiting.map(\.id) == ["ep-consumer1"] && waiting[0].connection == .disconnected && waiting[0].account == accountA)

        // Step 6: B accepts: Connected.
        let accepted = try endpoint.plane.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider)
        try expectConsistent(endpoint.plane, accepted)
        #expect(accepted.value.connection == .connected)
        #expect(accepted.changes == [.setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: .connected))])
        #expect(accepted.catalog.connection(of: accepted.catalog.endpoints[0]) == .connected)
        #expect(try accepted.plane.endpoint("ep-consumer1", by: consumer).connection == .connected)

        // B rejects: Rejected.
        let rejected = try accepted.plane.reject(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider)
        #expect(rejected.value.connection == .rejected)
        #expect(rejected.catalog.connection(of: rejected.catalog.endpoints[0]) == .rejected)

        // C, on no whitelist, cannot create an endpoint: the service is as unknown to it as one
        // that does not exist, and the refusal names the whitelist rule.
        let refused = error {
            try rejected.plane.createEndpoint(
                CreateEndpointRequest(service: "epsrv-frankfurt1", vpc: "vpc-3", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-3b")]),
                by: stranger)
        }
        guard case .notFound(let message) = refused else { Issue.record("expected not found, got \(String(describing: refused))"); return }
        #expect(message == "no endpoint service 'epsrv-frankfurt1' that account 3333333333333333 may see (a service is seen by its provider, the accounts on its whitelist and the operator)")
        #expect(refused?.httpStatus == 404 && refused?.code == "not_found")
    }

    @Test func autoAcceptingServiceConnectsNewEndpointsAtOnce() throws {
        var request = seedService
        request.autoAcceptConnections = true
        var p = try plane().createService(request, by: provider).plane
        p = try p.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider).plane
        let endpoint = try p.createEndpoint(seedEndpoint, by: consumer)
        #expect(endpoint.value.connection == .connected)
        #expect(endpoint.changes.contains(.setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: .connected))))
    }

    @Test func theWholeWalkthroughReplaysFromItsChanges() throws {
        var p = try plane()
        var journal: [StateChange] = []
        func step<V>(_ applied: Applied<V>) { journal += applied.changes; p = applied.plane }
        step(try p.createService(seedService, by: provider))
        step(try p.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider))
        step(try p.createEndpoint(seedEndpoint, by: consumer))
        step(try p.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider))
        #expect(ControlState(replaying: journal) == p.state)
        // Replaying twice is harmless: changes are idempotent.
        #expect(ControlState(replaying: journal + journal) == p.state)
    }
}
