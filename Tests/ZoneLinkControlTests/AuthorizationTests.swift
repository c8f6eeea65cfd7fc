import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

/// Who asks, relative to the objects of `AuthorizationTests.world`.
enum Actor: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Account B: provides epsrv-x and epsrv-y.
    case provider
    /// Account A: on epsrv-x's whitelist, owns ep-a.
    case consumer
    /// Account C: on no whitelist, owns nothing there.
    case other
    case `operator`

    var principal: Principal {
        switch self {
        case .provider: .account(accountB)
        case .consumer: .account(accountA)
        case .other: .account(accountC)
        case .operator: .operator
        }
    }

    var description: String { rawValue }
}

enum Operation: String, CaseIterable, Sendable, CustomStringConvertible {
    case createService, listServices, showService, updateService, deleteService
    case listWhitelist, addToWhitelist, removeFromWhitelist
    case createEndpoint, listEndpoints, showEndpoint, deleteEndpoint
    case listConnections, accept, reject, disconnect

    var description: String { rawValue }

    /// Runs the operation as `actor` on `world`, with the request that actor would send.
    func run(_ actor: Actor, on world: ControlPlane) -> ControlError? {
        let who = actor.principal
        switch self {
        case .createService:
            let request = CreateServiceRequest(
                id: "epsrv-new", account: actor == .operator ? accountB : nil,
                resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")])
            return error { try world.createService(request, by: who) }
        case .listServices: return error { world.listServices(by: who) }
        case .showService: return error { try world.service("epsrv-x", by: who) }
        case .updateService: return error { try world.updateService("epsrv-x", UpdateServiceRequest(zoneAffinity: false), by: who) }
        case .deleteService: return error { try world.deleteService("epsrv-y", by: who) }
        case .listWhitelist: return error { try world.whitelist(of: "epsrv-x", by: who) }
        case .addToWhitelist: return error { try world.addToWhitelist(accountC, of: "epsrv-x", by: who) }
        case .removeFromWhitelist: return error { try world.removeFromWhitelist("4444444444444444", of: "epsrv-y", by: who) }
        case .createEndpoint:
            // Each in its own VPC; the operator for the consumer.
            let (account, vpc, vswitch): (String?, String, String) = switch actor {
            case .provider: (nil, "vpc-2", "vsw-2b")
            case .consumer: (nil, "vpc-1", "vsw-1b")
            case .other: (nil, "vpc-3", "vsw-3b")
            case .operator: (accountA, "vpc-1", "vsw-1b")
            }
            let request = CreateEndpointRequest(
                id: "ep-new", account: account, service: "epsrv-x", vpc: vpc, zones: [ZoneChoice(zone: "eu-central-1b", vswitch: vswitch)])
            return error { try world.createEndpoint(request, by: who) }
        case .listEndpoints: return error { world.listEndpoints(by: who) }
        case .showEndpoint: return error { try world.endpoint("ep-a", by: who) }
        case .deleteEndpoint: return error { try world.deleteEndpoint("ep-a", by: who) }
        case .listConnections: return error { try world.connections(of: "epsrv-x", by: who) }
        case .accept: return error { try world.accept(service: "epsrv-x", endpoint: "ep-a", by: who) }
        case .reject: return error { try world.reject(service: "epsrv-x", endpoint: "ep-a", by: who) }
        case .disconnect: return error { try world.disconnect(service: "epsrv-x", endpoint: "ep-a", by: who) }
        }
    }
}

@Suite("Authorisation: every operation × provider, whitelisted consumer, other account, operator")
struct AuthorizationTests {
    /// B provides epsrv-x (manual accept, zones a and b; whitelist: A) and epsrv-y (no
    /// endpoints; whitelist: 4444…, an account not in the file). A owns ep-a of epsrv-x in
    /// VPC 1, Disconnected (Connected for the disconnect row).
    static func world(connected: Bool = false) throws -> ControlPlane {
        var p = try plane()
        p = try p.createService(CreateServiceRequest(
            id: "epsrv-x", resources: [
                ServiceResourceSpec(zone: "eu-central-1a", loadBalancer: "clb-1a"),
                ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b"),
            ]), by: provider).plane
        p = try p.createService(CreateServiceRequest(
            id: "epsrv-y", resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")]), by: provider).plane
        p = try p.addToWhitelist(accountA, of: "epsrv-x", by: provider).plane
        p = try p.addToWhitelist("4444444444444444", of: "epsrv-y", by: provider).plane
        p = try p.createEndpoint(CreateEndpointRequest(
            id: "ep-a", service: "epsrv-x", vpc: "vpc-1", securityGroups: ["sg-1"],
            zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.2.50")]), by: consumer).plane
        if connected { p = try p.accept(service: "epsrv-x", endpoint: "ep-a", by: provider).plane }
        return p
    }

    /// The expected outcome of each operation for provider, consumer, other, operator. An
    /// object the caller may not see at all is as unknown to it (404), so that a refusal never
    /// tells another tenant which IDs exist; one it sees but may not change is 403.
    static let expected: [Operation: [Actor: Outcome]] = [
        .createService: [.provider: .ok, .consumer: .forbidden, .other: .forbidden, .operator: .ok],
        .listServices: [.provider: .ok, .consumer: .ok, .other: .ok, .operator: .ok],
        .showService: [.provider: .ok, .consumer: .ok, .other: .notFound, .operator: .ok],
        .updateService: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
        .deleteService: [.provider: .ok, .consumer: .notFound, .other: .notFound, .operator: .ok],
        .listWhitelist: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
        .addToWhitelist: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
        .removeFromWhitelist: [.provider: .ok, .consumer: .notFound, .other: .notFound, .operator: .ok],
        .createEndpoint: [.provider: .ok, .consumer: .ok, .other: .notFound, .operator: .ok],
        .listEndpoints: [.provider: .ok, .consumer: .ok, .other: .ok, .operator: .ok],
        .showEndpoint: [.provider: .ok, .consumer: .ok, .other: .notFound, .operator: .ok],
        .deleteEndpoint: [.provider: .forbidden, .consumer: .ok, .other: .notFound, .operator: .ok],
        .listConnections: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
        .accept: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
        .reject: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
        .disconnect: [.provider: .ok, .consumer: .forbidden, .other: .notFound, .operator: .ok],
    ]

    @Test func tableCoversEveryCell() {
        #expect(Set(Self.expected.keys) == Set(Operation.allCases))
        #expect(Self.expected.values.allSatisfy { Set($0.keys) == Set(Actor.allCases) })
    }

    @Test(arguments: Operation.allCases, Actor.allCases)
    func matrix(_ operation: Operation, _ actor: Actor) throws {
        let world = try Self.world(connected: operation == .disconnect)
        let failure = operation.run(actor, on: world)
        #expect(Outcome(failure) == Self.expected[operation]?[actor], "\(failure?.description ?? "ok")")
        if case .forbidden(let rule) = failure {
            // Every refusal names who was refused (or whose object it is) and, after a colon, the rule.
            #expect(rule.contains(actor.principal.accountID ?? "-") || rule.contains("another account"), "\(rule)")
            #expect(rule.contains(": "), "\(rule)")
        }
    }

    @Test func listsShowOnlyWhatEachMaySee() throws {
        let world = try Self.world()
        #expect(world.listServices(by: provider).map(\.id) == ["epsrv-x", "epsrv-y"])
        #expect(world.listServices(by: consumer).map(\.id) == ["epsrv-x"])
        #expect(world.listServices(by: stranger).isEmpty)
        #expect(world.listServices(by: .operator).map(\.id) == ["epsrv-x", "epsrv-y"])
        #expect(world.listEndpoints(by: provider).map(\.id) == ["ep-a"])
        #expect(world.listEndpoints(by: consumer).map(\.id) == ["ep-a"])
        #expect(world.listEndpoints(by: stranger).isEmpty)
        #expect(world.listEndpoints(by: .operator).map(\.id) == ["ep-a"])
    }

    @Test func consumerSeesNoProviderInternals() throws {
        let world = try Self.world()
        let asConsumer = try world.service("epsrv-x", by: consumer)
        #expect(asConsumer.resources == nil && asConsumer.whitelist == nil && asConsumer.proxyProtocol == nil)
        #expect(asConsumer.zones == ["eu-central-1a", "eu-central-1b"] && asConsumer.account == accountB)
        let asProvider = try world.service("epsrv-x", by: provider)
        #expect(asProvider.resources?.map(\.loadBalancer) == ["clb-1a", "clb-1b"])
        #expect(asProvider.whitelist == [WhitelistEntry(service: "epsrv-x", account: accountA, origin: .api)])
        let json = String(decoding: try JSONEncoder().encode(asConsumer), as: UTF8.self)
        #expect(!json.contains("clb-") && !json.contains(accountA))
    }

    @Test func providerSeesTheConnectionNotTheConsumersVPC() throws {
        let world = try Self.world()
        let asProvider = try world.endpoint("ep-a", by: provider)
        #expect(asProvider.placement == nil)
        #expect(asProvider.id == "ep-a" && asProvider.service == "epsrv-x" && asProvider.account == accountA)
        #expect(asProvider.zones == ["eu-central-1b"] && asProvider.connection == .disconnected)
        for view in try [world.listEndpoints(by: provider), world.connections(of: "epsrv-x", by: provider)] {
            let json = String(decoding: try JSONEncoder().encode(view), as: UTF8.self)
            #expect(!json.contains("vpc-1") && !json.contains("vsw-1b") && !json.contains("10.10.2.50") && !json.contains("sg-1"), "\(json)")
        }
        let asOwner = try world.endpoint("ep-a", by: consumer)
        #expect(asOwner.placement?.vpc == "vpc-1" && asOwner.placement?.enis.map(\.address) == ["10.10.2.50"])
        #expect(try world.endpoint("ep-a", by: .operator).placement != nil)
    }

    @Test func providersOwnEndpointShowsItsPlacementToIt() throws {
        let world = try Self.world()
        let own = try world.createEndpoint(CreateEndpointRequest(
            id: "ep-b", service: "epsrv-x", vpc: "vpc-2", zones: [ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-2a")]), by: provider)
        #expect(own.value.placement?.vpc == "vpc-2")
        #expect(own.plane.listEndpoints(by: provider).map { ($0.id, $0.placement == nil) }.elementsEqual([("ep-a", true), ("ep-b", false)], by: ==))
        // The consumer of ep-a sees nothing of ep-b.
        #expect(own.plane.listEndpoints(by: consumer).map(\.id) == ["ep-a"])
        #expect(Outcome(error { try own.plane.endpoint("ep-b", by: consumer) }) == .notFound)
    }

    @Test func refusalsNameTheirRule() throws {
        let world = try Self.world()
        #expect(world.addToWhitelistError(by: consumer)?.message
            == "account 1111111111111111 is not the provider of epsrv-x: only its provider or the operator may see or change its whitelist")
        // Another tenant's service and one that does not exist: the same words but for the ID.
        let hidden = error { try world.service("epsrv-x", by: stranger) }
        let unknown = error { try world.service("epsrv-q", by: stranger) }
        #expect(hidden?.message == "no endpoint service 'epsrv-x' that account 3333333333333333 may see (a service is seen by its provider, the accounts on its whitelist and the operator)")
        #expect(hidden?.message.replacingOccurrences(of: "epsrv-x", with: "epsrv-q") == unknown?.message)
        let hiddenEndpoint = error { try world.deleteEndpoint("ep-a", by: stranger) }
        let unknownEndpoint = error { try world.deleteEndpoint("ep-q", by: stranger) }
        #expect(hiddenEndpoint?.message.replacingOccurrences(of: "ep-a", with: "ep-q") == unknownEndpoint?.message)
        #expect(error { try world.deleteEndpoint("ep-a", by: provider) }?.message.contains("reject or disconnect its connection instead") == true)
        #expect(error { try world.accept(service: "epsrv-x", endpoint: "ep-a", by: consumer) }?.message
            == "account 1111111111111111 is not the provider of epsrv-x: only its provider or the operator may accept, reject or disconnect its connections")
        let lb = error {
            try world.createService(CreateServiceRequest(resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")]), by: stranger)
        }
        #expect(lb?.message == "load balancer clb-1b belongs to another account: a service uses its own account's load balancers")
        let vpc = error {
            try world.createEndpoint(CreateEndpointRequest(service: "epsrv-x", vpc: "vpc-2", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-2b")]), by: consumer)
        }
        #expect(vpc?.message == "VPC vpc-2 belongs to another account: an endpoint is created in one of its own account's VPCs")
        let actingForOther = error {
            try world.createEndpoint(CreateEndpointRequest(account: accountB, service: "epsrv-x", vpc: "vpc-1", zones: []), by: consumer)
        }
        #expect(actingForOther == .forbidden(rule: "account 1111111111111111 cannot create endpoints for account 2222222222222222: an account creates endpoints in its own name"))
    }

    @Test func anAccountMayNameItselfByIDOrName() throws {
        let world = try Self.world()
        for name in [accountA, "account-a"] {
            let created = try world.createEndpoint(CreateEndpointRequest(
                id: "ep-self", account: name, service: "epsrv-x", vpc: "vpc-1", zones: [ZoneChoice(zone: "eu-central-1a", vswitch: "vsw-1a")]), by: consumer)
            #expect(created.value.account == accountA)
        }
    }

    @Test func operatorNamesTheAccountItActsFor() throws {
        let world = try Self.world()
        let missing = error { try world.createService(CreateServiceRequest(resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")]), by: .operator) }
        #expect(missing?.issues.map(\.keyPath) == ["account"])
        let unknown = error { try world.createService(CreateServiceRequest(account: "9999999999999999", resources: []), by: .operator) }
        #expect(unknown?.issues.first?.problem == "unknown account '9999999999999999'")
        let created = try world.createService(CreateServiceRequest(
            id: "epsrv-op", account: "account-b", resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")]), by: .operator)
        #expect(created.value.account == accountB)
        // The provider owns it, as if it had created it.
        #expect(try created.plane.deleteService("epsrv-op", by: provider).value.id == "epsrv-op")
        // The operator cannot connect an account that is not on the whitelist.
        let notWhitelisted = error {
            try world.createEndpoint(CreateEndpointRequest(
                account: accountC, service: "epsrv-x", vpc: "vpc-3", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-3b")]), by: .operator)
        }
        #expect(notWhitelisted?.message.contains("account 3333333333333333 is not on the whitelist of epsrv-x") == true)
    }

    @Test func anotherAccountsServicesAreItsOwnBusiness() throws {
        // C may run a service of its own, on its own load balancer; B cannot touch it.
        let world = try Self.world()
        let cService = try world.createService(CreateServiceRequest(
            id: "epsrv-c", resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-3b")]), by: stranger)
        #expect(cService.plane.listServices(by: provider).map(\.id) == ["epsrv-x", "epsrv-y"])
        #expect(Outcome(error { try cService.plane.deleteService("epsrv-c", by: provider) }) == .notFound)
        #expect(Outcome(error { try cService.plane.updateService("epsrv-c", UpdateServiceRequest(zoneAffinity: true), by: consumer) }) == .notFound)
    }
}

extension ControlPlane {
    fileprivate func addToWhitelistError(by principal: Principal) -> ControlError? {
        error { try addToWhitelist(accountC, of: "epsrv-x", by: principal) }
    }
}
