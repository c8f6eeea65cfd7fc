import Foundation
import Testing
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

/// Who asks, relative to the world of `AuthorizationMatrixTests`.
enum Caller: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Account B: provides epsrv-x and epsrv-y.
    case provider
    /// Account A: on epsrv-x's whitelist, owns ep-a.
    case consumer
    /// Account C: on no whitelist, owns nothing there.
    case other
    case `operator`
    /// No Authorization header.
    case anonymous

    var principal: Principal? {
        switch self {
        case .provider: .account(accountB)
        case .consumer: .account(accountA)
        case .other: .account(accountC)
        case .operator: .operator
        case .anonymous: nil
        }
    }

    var description: String { rawValue }
}

/// An HTTP request per control operation, as each caller would send it.
enum Call: String, CaseIterable, Sendable, CustomStringConvertible {
    case createService, listServices, showService, updateService, deleteService
    case listWhitelist, addWhitelistEntry, removeWhitelistEntry
    case createEndpoint, listEndpoints, showEndpoint, deleteEndpoint
    case listConnections, accept, reject, disconnect
    case listZonalShifts, startZonalShift, endZonalShift
    case explainDNS, listEvents

    var description: String { rawValue }

    func send(as caller: Caller, to server: RunningServer) async throws -> HTTPReply {
        let who = caller.principal
        switch self {
        case .createService:
            let request = CreateServiceRequest(
                id: "epsrv-new", account: caller == .operator ? accountB : nil,
                resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")])
            return try await server.request("POST", "/v1/services", as: who, json: request)
        case .listServices: return try await server.request("GET", "/v1/services", as: who)
        case .showService: return try await server.request("GET", "/v1/services/epsrv-x", as: who)
        case .updateService: return try await server.request("PATCH", "/v1/services/epsrv-x", as: who, json: UpdateServiceRequest(zoneAffinity: false))
        case .deleteService: return try await server.request("DELETE", "/v1/services/epsrv-y", as: who)
        case .listWhitelist: return try await server.request("GET", "/v1/services/epsrv-x/whitelist", as: who)
        case .addWhitelistEntry:
            return try await server.request("POST", "/v1/services/epsrv-x/whitelist", as: who, json: Components.Schemas.AddWhitelistEntryRequest(account: accountC))
        case .removeWhitelistEntry: return try await server.request("DELETE", "/v1/services/epsrv-y/whitelist/4444444444444444", as: who)
        case .createEndpoint:
            let (account, vpc, vswitch): (String?, String, String) = switch caller {
            case .provider: (nil, "vpc-2", "vsw-2b")
            case .consumer, .anonymous: (nil, "vpc-1", "vsw-1b")
            case .other: (nil, "vpc-3", "vsw-3b")
            case .operator: (accountA, "vpc-1", "vsw-1b")
            }
            let request = CreateEndpointRequest(
                id: "ep-new", account: account, service: "epsrv-x", vpc: vpc, zones: [ZoneChoice(zone: "eu-central-1b", vswitch: vswitch)])
            return try await server.request("POST", "/v1/endpoints", as: who, json: request)
        case .listEndpoints: return try await server.request("GET", "/v1/endpoints", as: who)
        case .showEndpoint: return try await server.request("GET", "/v1/endpoints/ep-a", as: who)
        case .deleteEndpoint: return try await server.request("DELETE", "/v1/endpoints/ep-a", as: who)
        case .listConnections: return try await server.request("GET", "/v1/services/epsrv-x/connections", as: who)
        case .accept: return try await server.request("POST", "/v1/services/epsrv-x/connections/ep-a/accept", as: who)
        case .reject: return try await server.request("POST", "/v1/services/epsrv-x/connections/ep-a/reject", as: who)
        case .disconnect: return try await server.request("POST", "/v1/services/epsrv-x/connections/ep-a/disconnect", as: who)
        case .listZonalShifts: return try await server.request("GET", "/v1/zone-shifts", as: who)
        case .startZonalShift:
            return try await server.request(
                "POST", "/v1/zone-shifts", as: who, json: Components.Schemas.StartZonalShiftRequest(zone: "eu-central-1b", expiresIn: "1h"))
        case .endZonalShift: return try await server.request("DELETE", "/v1/zone-shifts/eu-central-1b", as: who)
        case .explainDNS:
            return try await server.request("GET", "/v1/dns/explain?vpc=vpc-1&name=ep-a.epsrv-x.eu-central-1.privatelink.internal", as: who)
        case .listEvents: return try await server.request("GET", "/v1/events", as: who)
        }
    }
}

@Suite("Authorisation over HTTP: every operation × provider, consumer, other account, operator, no token")
struct AuthorizationMatrixTests {
    /// B provides epsrv-x (whitelist: A) and epsrv-y (no endpoints; whitelist: 4444…). A owns
    /// ep-a of epsrv-x in VPC 1, Disconnected (Connected for the disconnect row). Zone
    /// eu-central-1b is shifted away for the row that ends a shift.
    static func buildWorld(_ service: ControlService, connected: Bool, shifted: Bool = false) async throws {
        let resources = [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")]
        _ = try await service.perform { try $0.createService(CreateServiceRequest(id: "epsrv-x", resources: resources), by: provider) }
        _ = try await service.perform { try $0.createService(CreateServiceRequest(id: "epsrv-y", resources: resources), by: provider) }
        _ = try await service.perform { try $0.addToWhitelist(accountA, of: "epsrv-x", by: provider) }
        _ = try await service.perform { try $0.addToWhitelist("4444444444444444", of: "epsrv-y", by: provider) }
        let endpoint = CreateEndpointRequest(
            id: "ep-a", service: "epsrv-x", vpc: "vpc-1", securityGroups: ["sg-1"],
            zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.2.50")])
        _ = try await service.perform { try $0.createEndpoint(endpoint, by: consumer) }
        if connected { _ = try await service.perform { try $0.accept(service: "epsrv-x", endpoint: "ep-a", by: provider) } }
        if shifted {
            _ = try await service.perform {
                try $0.startZonalShift(StartZonalShiftRequest(zone: "eu-central-1b", force: true), by: .operator, now: 1, health: ObservedHealth())
            }
        }
    }

    /// The expected status for provider, consumer, other, operator; 401 without a token. An
    /// object the caller may not see is 404, as an unknown one; one it sees but may not change 403.
    static let expected: [Call: [Caller: Int]] = [
        .createService: [.provider: 201, .consumer: 403, .other: 403, .operator: 201],
        .listServices: [.provider: 200, .consumer: 200, .other: 200, .operator: 200],
        .showService: [.provider: 200, .consumer: 200, .other: 404, .operator: 200],
        .updateService: [.provider: 200, .consumer: 403, .other: 404, .operator: 200],
        .deleteService: [.provider: 200, .consumer: 404, .other: 404, .operator: 200],
        .listWhitelist: [.provider: 200, .consumer: 403, .other: 404, .operator: 200],
        .addWhitelistEntry: [.provider: 201, .consumer: 403, .other: 404, .operator: 201],
        .removeWhitelistEntry: [.provider: 200, .consumer: 404, .other: 404, .operator: 200],
        .createEndpoint: [.provider: 201, .consumer: 201, .other: 404, .operator: 201],
        .listEndpoints: [.provider: 200, .consumer: 200, .other: 200, .operator: 200],
        .showEndpoint: [.provider: 200, .consumer: 200, .other: 404, .operator: 200],
        .deleteEndpoint: [.provider: 403, .consumer: 200, .other: 404, .operator: 200],
        .listConnections: [.provider: 200, .consumer: 403, .other: 404, .operator: 200],
        .accept: [.provider: 200, .consumer: 403, .other: 404, .operator: 200],
        .reject: [.provider: 200, .consumer: 403, .other: 404, .operator: 200],
        .disconnect: [.provider: 200, .consumer: 403, .other: 404, .operator: 200],
        .listZonalShifts: [.provider: 403, .consumer: 403, .other: 403, .operator: 200],
        .startZonalShift: [.provider: 403, .consumer: 403, .other: 403, .operator: 201],
        .endZonalShift: [.provider: 403, .consumer: 403, .other: 403, .operator: 200],
        // VPC 1 is the consumer's: only it and the operator may ask how its clients are answered.
        .explainDNS: [.provider: 404, .consumer: 200, .other: 404, .operator: 200],
        // Everyone may listen; each hears only its own events (`EventTests`).
        .listEvents: [.provider: 200, .consumer: 200, .other: 200, .operator: 200],
    ]

    @Test(arguments: Call.allCases)
    func matrix(_ call: Call) async throws {
        for caller in Caller.allCases {
            try await withServer { server in
                try await Self.buildWorld(server.service, connected: call == .disconnect, shifted: call == .endZonalShift)
                let before = await server.service.current.state
                let reply = try await call.send(as: caller, to: server)
                let want = caller == .anonymous ? 401 : Self.expected[call]?[caller]
                #expect(reply.status == want, "\(call) as \(caller): \(reply)")
                if reply.status >= 400 {
                    // Refusals change nothing, and say why in the error shape.
                    #expect(await server.service.current.state == before)
                    let code = [401: "unauthorized", 403: "forbidden", 404: "not_found"][reply.status]
                    #expect(reply.error?.code == code, "\(reply)")
                }
                if reply.status == 403 {
                    let message = reply.error?.message ?? ""
                    #expect(message.contains(caller.principal?.accountID ?? "-") || message.contains("another account"), "\(message)")
                    #expect(message.contains(": "), "\(message)")
                }
            }
        }
    }

    @Test func listsShowOnlyWhatEachMaySee() async throws {
        try await withServer { server in
            try await Self.buildWorld(server.service, connected: false)
            func services(_ who: Principal) async throws -> [String] {
                try await server.request("GET", "/v1/services", as: who).decode([ServiceView].self).map(\.id)
            }
            func endpoints(_ who: Principal) async throws -> [EndpointView] {
                try await server.request("GET", "/v1/endpoints", as: who).decode([EndpointView].self)
            }
            #expect(try await services(provider) == ["epsrv-x", "epsrv-y"])
            #expect(try await services(consumer) == ["epsrv-x"])
            #expect(try await services(stranger) == [])
            #expect(try await services(.operator) == ["epsrv-x", "epsrv-y"])
            #expect(try await endpoints(stranger).isEmpty)
            // The provider sees the connection, not the consumer's VPC.
            let asProvider = try await endpoints(provider)
            #expect(asProvider.map(\.id) == ["ep-a"] && asProvider[0].placement == nil)
            #expect(try await endpoints(consumer).first?.placement?.vpc == "vpc-1")
            // A consumer sees no provider internals.
            let asConsumer = try await server.request("GET", "/v1/services/epsrv-x", as: consumer)
            #expect(!asConsumer.text.contains("resources") && !asConsumer.text.contains("whitelist"), "\(asConsumer)")
        }
    }
}
