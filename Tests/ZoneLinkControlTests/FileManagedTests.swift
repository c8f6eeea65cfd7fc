import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

/// Objects declared in the config file are changed by editing it, not through the API.
@Suite("Objects declared in the file")
struct FileManagedTests {
    func world() throws -> ControlPlane { try plane(fileDeclaredYAML) }

    @Test func fileObjectsAreMarkedAsSuch() throws {
        let world = try world()
        #expect(try world.service("epsrv-frankfurt1", by: provider).origin == .file)
        #expect(try world.endpoint("ep-consumer1", by: consumer).origin == .file)
        #expect(try world.whitelist(of: "epsrv-frankfurt1", by: provider) == [WhitelistEntry(service: "epsrv-frankfurt1", account: accountA, origin: .file)])
        #expect(world.state == ControlState())
    }

    @Test func deletingOrChangingAFileObjectSaysToEditTheFile() throws {
        let world = try world()
        let attempts: [(String, ControlError?)] = [
            ("delete service", error { try world.deleteService("epsrv-frankfurt1", by: provider) }),
            ("update service", error { try world.updateService("epsrv-frankfurt1", UpdateServiceRequest(autoAcceptConnections: true), by: provider) }),
            ("delete endpoint", error { try world.deleteEndpoint("ep-consumer1", by: consumer) }),
            ("delete endpoint as operator", error { try world.deleteEndpoint("ep-consumer1", by: .operator) }),
            ("remove whitelist entry", error { try world.removeFromWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }),
        ]
        for (what, failure) in attempts {
            guard case .fileManaged(let message) = failure else { Issue.record("\(what): expected fileManaged, got \(String(describing: failure))"); continue }
            #expect(message.contains("zones/test.yaml") && message.contains("edit the file and reload"), "\(what): \(message)")
            #expect(failure?.code == "file_managed" && failure?.httpStatus == 409)
        }
        #expect(error { try world.deleteService("epsrv-frankfurt1", by: provider) }
            == .fileManaged("epsrv-frankfurt1 is declared in zones/test.yaml; edit the file and reload (SIGHUP) to delete it"))
    }

    @Test func authorisationComesBeforeTheFileRule() throws {
        // A stranger learns nothing of an object it may not see, not even how it is managed;
        // one that sees it learns it may not change it.
        let world = try world()
        #expect(Outcome(error { try world.deleteEndpoint("ep-consumer1", by: stranger) }) == .notFound)
        #expect(Outcome(error { try world.deleteService("epsrv-frankfurt1", by: consumer) }) == .forbidden)
    }

    @Test func apiWhitelistEntriesJoinAFileService() throws {
        let world = try world()
        let added = try world.addToWhitelist(accountC, of: "epsrv-frankfurt1", by: provider)
        #expect(try added.plane.whitelist(of: "epsrv-frankfurt1", by: provider).map(\.origin) == [.file, .api])
        #expect(added.catalog.service("epsrv-frankfurt1")?.whitelist == [accountA, accountC])
        // C can now connect to the file's service, in its own VPC.
        let endpoint = try added.plane.createEndpoint(CreateEndpointRequest(
            id: "ep-c", service: "epsrv-frankfurt1", vpc: "vpc-3", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-3b")]), by: stranger)
        #expect(endpoint.value.origin == .api && endpoint.value.connection == .disconnected)
        // The API's entry can be removed once C's endpoint is gone; the file's cannot.
        #expect(Outcome(error { try endpoint.plane.removeFromWhitelist(accountC, of: "epsrv-frankfurt1", by: provider) }) == .conflict)
        let deleted = try endpoint.plane.deleteEndpoint("ep-c", by: stranger)
        let removed = try deleted.plane.removeFromWhitelist(accountC, of: "epsrv-frankfurt1", by: provider)
        try expectConsistent(deleted.plane, removed)
        #expect(removed.state == ControlState())
    }

    @Test func providerDecidesAFileEndpointsConnectionAndTheRecordWins() throws {
        // The file says Connected; that is only the initial state.
        let yaml = fileDeclaredYAML.replacingOccurrences(of: "securityGroups: [sg-1]\n", with: "securityGroups: [sg-1]\n    connection: Connected\n")
        let world = try plane(yaml)
        #expect(try world.endpoint("ep-consumer1", by: consumer).connection == .connected)
        let rejected = try world.reject(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider)
        #expect(rejected.changes == [.setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: .rejected))])
        #expect(rejected.state.configuration(base: world.base).endpoints[0].connection == .rejected)
        // After a restart (the same file, the stored state) it is still rejected.
        let restarted = try plane(yaml, state: rejected.state)
        #expect(try restarted.endpoint("ep-consumer1", by: consumer).connection == .rejected)
    }

    @Test func fileIDsAreTaken() throws {
        let world = try world()
        var service = seedService
        service.id = "epsrv-frankfurt1"
        #expect(error { try world.createService(service, by: provider) } == .conflict("endpoint service epsrv-frankfurt1 exists already"))
        #expect(error { try world.createEndpoint(seedEndpoint, by: consumer) } == .conflict("endpoint ep-consumer1 exists already"))
    }
}
