import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

@Suite("ControlState: merge, persistence, reload")
struct StateTests {
    @Test func configurationRoundTripBuildsAValidCatalog() throws {
        let world = try seedWorld()
        let merged = world.state.configuration(base: world.base)
        #expect(merged.endpointServices.map(\.id) == ["epsrv-frankfurt1"])
        #expect(merged.endpointServices[0].whitelist == [accountA])
        #expect(merged.endpoints.map(\.connection) == [.disconnected])
        let catalog = try Catalog(configuration: merged, file: "zones/test.yaml")
        #expect(catalog.services == world.catalog.services)
        #expect(catalog.endpoints == world.catalog.endpoints)
        #expect(catalog.endpoints[0].enis[0].address == IPv4Address("10.10.2.4"))
        // The merge adds to the file: with an empty state it is the file's configuration.
        #expect(ControlState().configuration(base: world.base) == world.base)
    }

    @Test func mergeAppendsAPIObjectsAfterTheFilesAndAddsWhitelistEntries() throws {
        let base = try configuration(fileDeclaredYAML)
        let state = ControlState(
            services: [ServiceRecord(id: "epsrv-api", account: accountB, resources: [zoneB])],
            whitelist: [
                WhitelistRecord(service: "epsrv-frankfurt1", account: accountC),
                WhitelistRecord(service: "epsrv-frankfurt1", account: accountA),  // already in the file
                WhitelistRecord(service: "epsrv-api", account: accountA),
                WhitelistRecord(service: "epsrv-gone", account: accountA),  // an orphan: ignored
            ],
            connections: [ConnectionRecord(endpoint: "ep-consumer1", state: .rejected), ConnectionRecord(endpoint: "ep-gone", state: .connected)])
        let merged = state.configuration(base: base)
        #expect(merged.endpointServices.map(\.id) == ["epsrv-frankfurt1", "epsrv-api"])
        #expect(merged.endpointServices.map(\.whitelist) == [[accountA, accountC], [accountA]])
        #expect(merged.endpoints.map(\.connection) == [.rejected])
        #expect(throws: Never.self) { try Catalog(configuration: merged, file: "t") }
    }

    @Test func stateAndChangesSurviveJSON() throws {
        var p = try seedWorld()
        p = try p.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider).plane
        let data = try JSONEncoder().encode(p.state)
        let decoded = try JSONDecoder().decode(ControlState.self, from: data)
        #expect(decoded == p.state)
        let restarted = try ControlPlane(base: p.base, file: p.file, state: decoded, suffix: { "x" })
        #expect(restarted.catalog.endpoints == p.catalog.endpoints)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"Connected\"") && text.contains("\"10.10.2.4\""))

        let changes: [StateChange] = [
            .putService(ServiceRecord(id: "epsrv-x", account: accountB, resources: [zoneB], privateDomain: "api.example")),
            .deleteService(id: "epsrv-x"),
            .addWhitelistEntry(WhitelistRecord(service: "epsrv-x", account: accountA)),
            .removeWhitelistEntry(WhitelistRecord(service: "epsrv-x", account: accountA)),
            .putEndpoint(p.state.endpoints[0]),
            .deleteEndpoint(id: "ep-consumer1"),
            .setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: .rejected)),
            .clearConnection(endpoint: "ep-consumer1"),
        ]
        #expect(try JSONDecoder().decode([StateChange].self, from: JSONEncoder().encode(changes)) == changes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let line = String(decoding: try encoder.encode(StateChange.setConnection(ConnectionRecord(endpoint: "ep-1", state: .connected))), as: UTF8.self)
        #expect(line == #"{"connection":{"endpoint":"ep-1","state":"Connected"},"op":"setConnection"}"#)
    }

    @Test func badStoredValuesAreDecodingErrors() {
        let badState = #"{"endpoint":"ep-1","state":"Pending"}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ConnectionRecord.self, from: Data(badState.utf8)) }
        let badAddress = #"{"zone":"z","vswitch":"v","address":"10.0.0.300"}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ENIRecord.self, from: Data(badAddress.utf8)) }
    }

    @Test func viewsSurviveJSON() throws {
        let world = try seedWorld()
        let endpoint = try world.endpoint("ep-consumer1", by: consumer)
        #expect(try JSONDecoder().decode(EndpointView.self, from: JSONEncoder().encode(endpoint)) == endpoint)
        let service = try world.service("epsrv-frankfurt1", by: provider)
        #expect(try JSONDecoder().decode(ServiceView.self, from: JSONEncoder().encode(service)) == service)
        let request = CreateEndpointRequest(service: "epsrv-frankfurt1", vpc: "vpc-1", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")])
        // Clients may leave optional fields out.
        let minimal = #"{"service":"epsrv-frankfurt1","vpc":"vpc-1","zones":[{"zone":"eu-central-1b","vswitch":"vsw-1b"}]}"#
        #expect(try JSONDecoder().decode(CreateEndpointRequest.self, from: Data(minimal.utf8)) == request)
        #expect(try JSONDecoder().decode(CreateServiceRequest.self, from: Data(#"{"resources":[]}"#.utf8)) == CreateServiceRequest(resources: []))
    }

    @Test func apiEndpointsKeepTheirAddressesWhenTheFileGrows() throws {
        let world = try seedWorld()
        #expect(world.state.endpoints[0].zones[0].address == IPv4Address("10.10.2.4"))
        // The file now declares an endpoint in the same vSwitch without an address.
        let grown = infrastructureYAML + """
            endpoints:
              - id: ep-file
                account: account-a
                service: epsrv-frankfurt1
                vpc: vpc-1
                zones: [{zone: eu-central-1b, vswitch: vsw-1b}]

            """
        // It needs the API's service: reloading with it works, and the API endpoint stays.
        let reloaded = try world.reloading(base: configuration(grown), file: "zones/test.yaml")
        let addresses = Dictionary(uniqueKeysWithValues: reloaded.catalog.endpoints.map { ($0.id, $0.enis[0].address!.description) })
        #expect(addresses == ["ep-consumer1": "10.10.2.4", "ep-file": "10.10.2.5"])
    }

    @Test func aNewEndpointCannotTakeAnAllocatedAddress() throws {
        // ep-consumer1 of the file has 10.10.2.4 by allocation, not by declaration.
        let world = try plane(fileDeclaredYAML)
        #expect(world.catalog.endpoints[0].enis[0].address == IPv4Address("10.10.2.4"))
        let request = CreateEndpointRequest(
            id: "ep-api", service: "epsrv-frankfurt1", vpc: "vpc-1",
            zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.2.4")])
        let failure = error { try world.createEndpoint(request, by: consumer) }
        #expect(failure?.issues.map(\.keyPath) == ["zones[0].address"])
        #expect(failure?.issues.first?.problem == "10.10.2.4 is already taken in VPC vpc-1 by the ENI of ep-consumer1 in eu-central-1b")
        // Why: the catalog alone would accept it and move the file's ENI to the next address.
        let unchecked = ControlState(endpoints: [EndpointRecord(
            id: "ep-api", account: accountA, service: "epsrv-frankfurt1", vpc: "vpc-1",
            zones: [ENIRecord(zone: "eu-central-1b", vswitch: "vsw-1b", address: IPv4Address("10.10.2.4"))])])
        let moved = try Catalog(configuration: unchecked.configuration(base: world.base), file: "t")
        #expect(moved.endpoints[0].enis[0].address == IPv4Address("10.10.2.5"))
    }

    @Test func reloadRemovesOrphansAndKeepsTheRest() throws {
        var world = try plane(fileDeclaredYAML)
        world = try world.addToWhitelist(accountC, of: "epsrv-frankfurt1", by: provider).plane
        world = try world.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider).plane
        world = try world.createService(CreateServiceRequest(id: "epsrv-api", resources: [zoneB]), by: provider).plane
        world = try world.addToWhitelist(accountA, of: "epsrv-api", by: provider).plane
        // The file now lists C itself and no longer declares ep-consumer1.
        let edited = infrastructureYAML + fileServiceYAML.replacingOccurrences(of: "[\"1111111111111111\"]", with: "[\"1111111111111111\", \"3333333333333333\"]")
        let reloaded = try world.reloading(base: configuration(edited), file: "zones/edited.yaml")
        #expect(reloaded.changes == [
            .removeWhitelistEntry(WhitelistRecord(service: "epsrv-frankfurt1", account: accountC)),
            .clearConnection(endpoint: "ep-consumer1"),
        ])
        #expect(reloaded.state.whitelist == [WhitelistRecord(service: "epsrv-api", account: accountA)])
        #expect(reloaded.plane.file == "zones/edited.yaml")
        #expect(reloaded.catalog.serial == world.catalog.serial + 1)
        #expect(try reloaded.plane.whitelist(of: "epsrv-frankfurt1", by: provider).map(\.origin) == [.file, .file])
    }

    @Test func reloadThatBreaksAnAPIObjectIsRefusedNamingIt() throws {
        let world = try seedWorld()
        // The new file takes away VPC 1, where the API's endpoint lives.
        let edited = infrastructureYAML
            .replacingOccurrences(of: "  - id: vpc-1\n", with: "  - id: vpc-9\n")
        #expect(edited != infrastructureYAML)
        #expect {
            _ = try world.reloading(base: configuration(edited), file: "zones/test.yaml")
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.issues.contains { $0.keyPath == "endpoints[ep-consumer1].vpc" && $0.problem.contains("created through the API") }
        }
    }

    @Test func serialGrowsWithEveryChange() throws {
        let start = try plane()
        let created = try start.createService(seedService, by: provider)
        let updated = try created.plane.updateService("epsrv-frankfurt1", UpdateServiceRequest(zoneAffinity: false), by: provider)
        #expect([start.catalog.serial, created.catalog.serial, updated.catalog.serial] == [1, 2, 3])
    }
}

@Suite("Services, whitelists and endpoints: the rest of their rules")
struct OperationTests {
    @Test func generatedIDsUseTheInjectedSuffix() throws {
        let suffixes = Suffixes()
        var world = try plane(suffixes: suffixes)
        let service = try world.createService(CreateServiceRequest(resources: [zoneB]), by: provider)
        #expect(service.value.id == "epsrv-s1")
        world = try service.plane.addToWhitelist(accountA, of: "epsrv-s1", by: provider).plane
        let endpoint = try world.createEndpoint(CreateEndpointRequest(
            service: "epsrv-s1", vpc: "vpc-1", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")]), by: consumer)
        #expect(endpoint.value.id == "ep-s2")
    }

    @Test func generatedIDsSkipTakenOnesAndGiveUpAfterSixteenTries() throws {
        let constant = try plane(suffixes: Suffixes(constant: "same"))
        let first = try constant.createService(CreateServiceRequest(resources: [zoneB]), by: provider)
        #expect(first.value.id == "epsrv-same")
        #expect(error { try first.plane.createService(CreateServiceRequest(resources: [zoneB]), by: provider) }
            == .conflict("no free endpoint service ID was found in 16 tries; give an id"))
        // With fresh suffixes a taken one is skipped.
        let counting = try plane(state: first.state, suffixes: Suffixes())
        var taken = try counting.createService(CreateServiceRequest(id: "epsrv-s1", resources: [zoneB]), by: provider).plane
        taken = try taken.createService(CreateServiceRequest(resources: [zoneB]), by: provider).plane
        #expect(taken.state.services.map(\.id) == ["epsrv-same", "epsrv-s1", "epsrv-s2"])
    }

    @Test func randomSuffixIsLowerCaseAlphanumeric() {
        var generator = SystemRandomNumberGenerator()
        let suffix = ControlPlane.randomSuffix(using: &generator)
        #expect(suffix.count == 12 && suffix.allSatisfy { $0.isLowercase || $0.isNumber })
    }

    @Test func updateChangesOnlyWhatIsGiven() throws {
        let world = try seedWorld()
        let updated = try world.updateService("epsrv-frankfurt1", UpdateServiceRequest(zoneAffinity: false), by: provider)
        #expect(updated.value.zoneAffinity == false && updated.value.autoAcceptConnections == false)
        #expect(updated.changes.count == 1)
        try expectConsistent(world, updated)
    }

    @Test func serviceWithEndpointsCannotBeDeleted() throws {
        let world = try seedWorld()
        #expect(error { try world.deleteService("epsrv-frankfurt1", by: provider) }
            == .conflict("epsrv-frankfurt1 still has endpoints: ep-consumer1; they must be deleted first"))
        let withoutEndpoint = try world.deleteEndpoint("ep-consumer1", by: consumer)
        #expect(withoutEndpoint.changes == [.deleteEndpoint(id: "ep-consumer1"), .clearConnection(endpoint: "ep-consumer1")])
        let deleted = try withoutEndpoint.plane.deleteService("epsrv-frankfurt1", by: provider)
        // Its whitelist goes with it.
        #expect(deleted.changes == [
            .deleteService(id: "epsrv-frankfurt1"),
            .removeWhitelistEntry(WhitelistRecord(service: "epsrv-frankfurt1", account: accountA)),
        ])
        #expect(deleted.state == ControlState())
        #expect(deleted.catalog.services.isEmpty && deleted.catalog.endpoints.isEmpty)
        try expectConsistent(withoutEndpoint.plane, deleted)
    }

    @Test func whitelistRules() throws {
        let world = try seedWorld()
        #expect(error { try world.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
            == .conflict("account 1111111111111111 is already on the whitelist of epsrv-frankfurt1"))
        #expect(error { try world.removeFromWhitelist(accountC, of: "epsrv-frankfurt1", by: provider) }
            == .notFound("account 3333333333333333 is not on the whitelist of epsrv-frankfurt1"))
        #expect(error { try world.removeFromWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
            == .conflict("account 1111111111111111 still has endpoints of epsrv-frankfurt1: ep-consumer1; they must be deleted before it leaves the whitelist"))
        let removable = try world.deleteEndpoint("ep-consumer1", by: .operator).plane
        let removed = try removable.removeFromWhitelist(accountA, of: "epsrv-frankfurt1", by: provider)
        #expect(removed.plane.listServices(by: consumer).isEmpty)
        #expect(try removed.plane.whitelist(of: "epsrv-frankfurt1", by: provider).isEmpty)
    }

    @Test func providerMayConnectToItsOwnServiceWithoutWhitelistingItself() throws {
        let world = try plane().createService(seedService, by: provider).plane
        let own = try world.createEndpoint(CreateEndpointRequest(
            service: "epsrv-frankfurt1", vpc: "vpc-2", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-2b")]), by: provider)
        #expect(own.value.account == accountB && own.value.connection == .disconnected)
    }

    @Test func unknownObjectsAreNotFound() throws {
        let world = try seedWorld()
        let failures: [ControlError?] = [
            error { try world.service("epsrv-nowhere", by: .operator) },
            error { try world.updateService("epsrv-nowhere", UpdateServiceRequest(), by: .operator) },
            error { try world.deleteService("epsrv-nowhere", by: .operator) },
            error { try world.whitelist(of: "epsrv-nowhere", by: .operator) },
            error { try world.endpoint("ep-nowhere", by: .operator) },
            error { try world.deleteEndpoint("ep-nowhere", by: .operator) },
            error { try world.connections(of: "epsrv-nowhere", by: .operator) },
            error { try world.createEndpoint(CreateEndpointRequest(service: "epsrv-nowhere", vpc: "vpc-1", zones: []), by: consumer) },
        ]
        #expect(failures.map { Outcome($0) } == Array(repeating: .notFound, count: failures.count))
        #expect(failures[0] == .notFound("no endpoint service 'epsrv-nowhere'") && failures[0]?.httpStatus == 404)
    }

    @Test func errorsReadAsAdvice() throws {
        #expect(ControlError.invalid(issues: [ConfigIssue("zones[0].address", "bad", hint: "fix it")]).description
            == "invalid: zones[0].address: bad (fix it)")
        #expect(ControlError.forbidden(rule: "r").httpStatus == 403)
        #expect(Principal.account(accountA).description == "account 1111111111111111")
        #expect(Principal.operator.description == "the operator" && Principal.operator.accountID == nil)
    }
}
