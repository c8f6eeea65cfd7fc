import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

struct Transition: Sendable, CustomTestStringConvertible {
    var from: ConnectionState
    var action: ConnectionAction
    /// nil: a conflict naming `from`.
    var to: ConnectionState?
    var testDescription: String { "\(from.rawValue) --\(action.rawValue)--> \(to?.rawValue ?? "conflict")" }
}

@Suite("Connection states")
struct ConnectionTests {
    static let table: [Transition] = [
        .init(from: .disconnected, action: .accept, to: .connected),
        .init(from: .rejected, action: .accept, to: .connected),
        .init(from: .connected, action: .accept, to: nil),
        .init(from: .disconnected, action: .reject, to: .rejected),
        .init(from: .connected, action: .reject, to: .rejected),
        .init(from: .rejected, action: .reject, to: nil),
        .init(from: .connected, action: .disconnect, to: .disconnected),
        .init(from: .disconnected, action: .disconnect, to: nil),
        .init(from: .rejected, action: .disconnect, to: nil),
    ]

    @Test func tableCoversEveryStateAndAction() {
        #expect(Self.table.count == ConnectionState.allCases.count * ConnectionAction.allCases.count)
        #expect(Set(Self.table.map { "\($0.from)/\($0.action)" }).count == Self.table.count)
    }

    @Test(arguments: table)
    func pureTransition(_ row: Transition) {
        #expect(row.action.apply(to: row.from) == row.to)
    }

    /// The same table through the control plane, from an endpoint whose recorded state is `from`.
    @Test(arguments: table)
    func transitionThroughTheControlPlane(_ row: Transition) throws {
        let world = try seedWorld()
        let start = try ControlPlane(
            base: world.base, file: world.file,
            state: world.state.applying([.setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: row.from))]),
            suffix: { "x" })
        let failure = error { try start.changeConnection(row.action, service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider) }
        if let to = row.to {
            let applied = try start.changeConnection(row.action, service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider)
            #expect(applied.value.connection == to)
            #expect(applied.catalog.connection(of: applied.catalog.endpoints[0]) == to)
            #expect(applied.changes == [.setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: to))])
            try expectConsistent(start, applied)
        } else {
            guard case .conflict(let message) = failure else { Issue.record("expected a conflict, got \(String(describing: failure))"); return }
            #expect(message.contains("is \(row.from.rawValue);"), "\(message)")
            #expect(message.contains("\(row.action.rawValue) applies to"), "\(message)")
            #expect(failure?.httpStatus == 409)
        }
    }

    @Test func conflictMessageNamesStateAndRule() throws {
        let world = try seedWorld()
        #expect(error { try world.disconnect(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider) }
            == .conflict("the connection of ep-consumer1 to epsrv-frankfurt1 is Disconnected; disconnect applies to Connected connections"))
    }

    @Test func initialStateFollowsAutoAccept() {
        #expect(ConnectionAction.initialState(autoAccept: true) == .connected)
        #expect(ConnectionAction.initialState(autoAccept: false) == .disconnected)
    }

    @Test func endpointOfAnotherServiceIsNotFound() throws {
        var world = try seedWorld()
        world = try world.createService(CreateServiceRequest(
            id: "epsrv-other", resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")]), by: provider).plane
        #expect(error { try world.accept(service: "epsrv-other", endpoint: "ep-consumer1", by: provider) }
            == .notFound("epsrv-other has no endpoint 'ep-consumer1'"))
        #expect(Outcome(error { try world.accept(service: "epsrv-nowhere", endpoint: "ep-consumer1", by: provider) }) == .notFound)
    }

    @Test func changingAutoAcceptKeepsExistingConnections() throws {
        // A file endpoint follows its API service's auto-accept until a state is recorded.
        let yaml = infrastructureYAML + fileEndpointYAML
        var request = seedService
        request.autoAcceptConnections = true
        // The file's endpoint needs the API's service: build state first, then the plane.
        let state = ControlState(
            services: [ServiceRecord(id: "epsrv-frankfurt1", account: accountB, resources: request.resources, autoAcceptConnections: true)],
            whitelist: [WhitelistRecord(service: "epsrv-frankfurt1", account: accountA)])
        let start = try plane(yaml, state: state)
        #expect(start.catalog.connection(of: start.catalog.endpoints[0]) == .connected)
        let updated = try start.updateService("epsrv-frankfurt1", UpdateServiceRequest(autoAcceptConnections: false), by: provider)
        #expect(updated.changes.contains(.setConnection(ConnectionRecord(endpoint: "ep-consumer1", state: .connected))))
        #expect(updated.catalog.connection(of: updated.catalog.endpoints[0]) == .connected)
        #expect(updated.value.autoAcceptConnections == false)
        try expectConsistent(start, updated)
        // New endpoints now wait for the provider.
        let second = try updated.plane.createEndpoint(CreateEndpointRequest(
            id: "ep-second", service: "epsrv-frankfurt1", vpc: "vpc-1", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")]), by: consumer)
        #expect(second.value.connection == .disconnected)
    }
}
