import Foundation
import OpenAPIRuntime
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore

/// The principal of the request being handled, set by `ControlAPI` once the token is checked.
///
/// The generated handlers take only the operation's input, so the caller's identity travels
/// beside it as a task-local value; a handler reached without one is a wiring fault.
enum RequestPrincipal {
    @TaskLocal static var current: Principal?

    static func get() throws -> Principal {
        guard let principal = current else { throw APIError.internalError(MissingPrincipal()) }
        return principal
    }

    struct MissingPrincipal: Error, CustomStringConvertible {
        var description: String { "no principal for the request: the token check did not run" }
    }
}

/// Answers `GET /v1/dns/explain` once the caller may see the VPC: set by `serve`, which owns
/// the DNS responder; throws `ControlError.invalid` for a question that cannot be asked.
public typealias DNSExplainer = @Sendable (Operations.ExplainDNS.Input.Query) async throws -> Components.Schemas.DNSExplanation

/// What the gateway reports for `GET /v1/health` before it is filtered for the caller.
public struct GatewayHealth: Sendable {
    public var backends: [Components.Schemas.BackendHealth]
    /// Where each load balancer serves from now (`Catalog.placement(of:failover:)`).
    public var loadBalancers: [Components.Schemas.LoadBalancerPlacement]
    public var zones: [Components.Schemas.ZoneHealth]
    /// The backends whose probes pass: what a zonal shift is checked against.
    public var observed: ObservedHealth

    public init(
        backends: [Components.Schemas.BackendHealth] = [], loadBalancers: [Components.Schemas.LoadBalancerPlacement] = [],
        zones: [Components.Schemas.ZoneHealth] = [], observed: ObservedHealth = ObservedHealth()
    ) {
        self.backends = backends
        self.loadBalancers = loadBalancers
        self.zones = zones
        self.observed = observed
    }

    /// The placement rows of `catalog`'s load balancers, and its endpoints' ENI rows: an ENI is
    /// healthy when the gateway does not report it (`unhealthy`) and it does not live in a zone
    /// shifted away; `failover` is what the data plane serves now (`BalancerFailover`).
    public static func placements(
        of catalog: Catalog, unhealthy: Set<ENIID>, failover: BalancerFailover
    ) -> (loadBalancers: [Components.Schemas.LoadBalancerPlacement], zones: [Components.Schemas.ZoneHealth]) {
        let balancers = catalog.loadBalancers.map { Components.Schemas.LoadBalancerPlacement($0, catalog.placement(of: $0, failover: failover)) }
        let zones = catalog.endpoints.flatMap { endpoint in
            endpoint.eniIDs.map { eni in
                let placement = catalog.placement(of: eni, endpoint: endpoint, failover: failover)
                return Components.Schemas.ZoneHealth(eni, healthy: !unhealthy.contains(eni) && placement.state != .shiftedAway, placement: placement)
            }
        }
        return (balancers, zones)
    }
}

/// The operations of docs/openapi.yaml (the generated `APIProtocol`), each handed to the
/// control plane as the request's principal: reads are answered from the current plane,
/// changes go through `ControlService.perform` (applied, committed, then answered). Refusals
/// are thrown as `ControlError` and given their status and body by `ErrorBodies`.
struct ControlHandlers: APIProtocol {
    let service: ControlService
    let counters: ControlMetrics
    let connections: ControlConnections
    /// The gateway's NAT table now.
    let natTable: @Sendable () async -> [Components.Schemas.NATRow]
    /// The gateway's backends and zones now.
    let gatewayHealth: @Sendable () async -> GatewayHealth
    /// Explains a DNS question with the answer engine serving now (`DNSExplainer`).
    let explainer: DNSExplainer

    // MARK: Services

    func listServices(_ input: Operations.ListServices.Input) async throws -> Operations.ListServices.Output {
        .ok(.init(body: .json(try await service.current.listServices(by: RequestPrincipal.get()).map(Components.Schemas.Service.init))))
    }

    func createService(_ input: Operations.CreateService.Input) async throws -> Operations.CreateService.Output {
        let body = switch input.body { case .json(let json): json }
        let principal = try RequestPrincipal.get()
        let created = try await change(Operations.CreateService.id) { try $0.createService(CreateServiceRequest(body), by: principal) }
        return .created(.init(body: .json(Components.Schemas.Service(created))))
    }

    func showService(_ input: Operations.ShowService.Input) async throws -> Operations.ShowService.Output {
        .ok(.init(body: .json(Components.Schemas.Service(try await service.current.service(input.path.service, by: RequestPrincipal.get())))))
    }

    func updateService(_ input: Operations.UpdateService.Input) async throws -> Operations.UpdateService.Output {
        let body = switch input.body { case .json(let json): json }
        let principal = try RequestPrincipal.get()
        let request = UpdateServiceRequest(
            autoAcceptConnections: body.autoAcceptConnections, zoneAffinity: body.zoneAffinity,
            connectionBandwidth: body.connectionBandwidth, removeConnectionBandwidth: body.removeConnectionBandwidth,
            dataPlane: body.dataPlane.map(ServiceDataPlane.init))
        let updated = try await change(Operations.UpdateService.id) { try $0.updateService(input.path.service, request, by: principal) }
        return .ok(.init(body: .json(Components.Schemas.Service(updated))))
    }

    func deleteService(_ input: Operations.DeleteService.Input) async throws -> Operations.DeleteService.Output {
        let principal = try RequestPrincipal.get()
        let deleted = try await change(Operations.DeleteService.id) { try $0.deleteService(input.path.service, by: principal) }
        return .ok(.init(body: .json(Components.Schemas.Service(deleted))))
    }

    // MARK: Whitelists

    func listWhitelist(_ input: Operations.ListWhitelist.Input) async throws -> Operations.ListWhitelist.Output {
        let entries = try await service.current.whitelist(of: input.path.service, by: RequestPrincipal.get())
        return .ok(.init(body: .json(entries.map(Components.Schemas.WhitelistEntry.init))))
    }

    func addWhitelistEntry(_ input: Operations.AddWhitelistEntry.Input) async throws -> Operations.AddWhitelistEntry.Output {
        let body = switch input.body { case .json(let json): json }
        let principal = try RequestPrincipal.get()
        let added = try await change(Operations.AddWhitelistEntry.id) {
            try $0.addToWhitelist(body.account, of: input.path.service, by: principal)
        }
        return .created(.init(body: .json(Components.Schemas.WhitelistEntry(added))))
    }

    func removeWhitelistEntry(_ input: Operations.RemoveWhitelistEntry.Input) async throws -> Operations.RemoveWhitelistEntry.Output {
        let principal = try RequestPrincipal.get()
        let removed = try await change(Operations.RemoveWhitelistEntry.id) {
            try $0.removeFromWhitelist(input.path.account, of: input.path.service, by: principal)
        }
        return .ok(.init(body: .json(Components.Schemas.WhitelistEntry(removed))))
    }

    // MARK: Connections

    func listConnections(_ input: Operations.ListConnections.Input) async throws -> Operations.ListConnections.Output {
        let endpoints = try await service.current.connections(of: input.path.service, by: RequestPrincipal.get())
        return .ok(.init(body: .json(endpoints.map(Components.Schemas.Endpoint.init))))
    }

    func acceptConnection(_ input: Operations.AcceptConnection.Input) async throws -> Operations.AcceptConnection.Output {
        .ok(.init(body: .json(try await changeConnection(.accept, input.path.service, input.path.endpoint, Operations.AcceptConnection.id))))
    }

    func rejectConnection(_ input: Operations.RejectConnection.Input) async throws -> Operations.RejectConnection.Output {
        .ok(.init(body: .json(try await changeConnection(.reject, input.path.service, input.path.endpoint, Operations.RejectConnection.id))))
    }

    func disconnectConnection(_ input: Operations.DisconnectConnection.Input) async throws -> Operations.DisconnectConnection.Output {
        .ok(.init(body: .json(try await changeConnection(
            .disconnect, input.path.service, input.path.endpoint, Operations.DisconnectConnection.id))))
    }

    private func changeConnection(
        _ action: ConnectionAction, _ serviceID: String, _ endpointID: String, _ operation: String
    ) async throws -> Components.Schemas.Endpoint {
        let principal = try RequestPrincipal.get()
        return Components.Schemas.Endpoint(try await change(operation) {
            try $0.changeConnection(action, service: serviceID, endpoint: endpointID, by: principal)
        })
    }

    // MARK: Endpoints

    func listEndpoints(_ input: Operations.ListEndpoints.Input) async throws -> Operations.ListEndpoints.Output {
        .ok(.init(body: .json(try await service.current.listEndpoints(by: RequestPrincipal.get()).map(Components.Schemas.Endpoint.init))))
    }

    func createEndpoint(_ input: Operations.CreateEndpoint.Input) async throws -> Operations.CreateEndpoint.Output {
        let body = switch input.body { case .json(let json): json }
        let principal = try RequestPrincipal.get()
        let created = try await change(Operations.CreateEndpoint.id) { try $0.createEndpoint(CreateEndpointRequest(body), by: principal) }
        return .created(.init(body: .json(Components.Schemas.Endpoint(created))))
    }

    func showEndpoint(_ input: Operations.ShowEndpoint.Input) async throws -> Operations.ShowEndpoint.Output {
        .ok(.init(body: .json(Components.Schemas.Endpoint(try await service.current.endpoint(input.path.endpoint, by: RequestPrincipal.get())))))
    }

    func deleteEndpoint(_ input: Operations.DeleteEndpoint.Input) async throws -> Operations.DeleteEndpoint.Output {
        let principal = try RequestPrincipal.get()
        let deleted = try await change(Operations.DeleteEndpoint.id) { try $0.deleteEndpoint(input.path.endpoint, by: principal) }
        return .ok(.init(body: .json(Components.Schemas.Endpoint(deleted))))
    }

    func addEndpointZone(_ input: Operations.AddEndpointZone.Input) async throws -> Operations.AddEndpointZone.Output {
        let body = switch input.body { case .json(let json): json }
        let principal = try RequestPrincipal.get()
        let choice = ZoneChoice(zone: body.zone, vswitch: body.vswitch, address: body.address)
        let changed = try await change(Operations.AddEndpointZone.id) { try $0.addEndpointZone(input.path.endpoint, choice, by: principal) }
        return .created(.init(body: .json(Components.Schemas.Endpoint(changed))))
    }

    func removeEndpointZone(_ input: Operations.RemoveEndpointZone.Input) async throws -> Operations.RemoveEndpointZone.Output {
        let principal = try RequestPrincipal.get()
        let changed = try await change(Operations.RemoveEndpointZone.id) {
            try $0.removeEndpointZone(input.path.endpoint, zone: input.path.zone, by: principal)
        }
        return .ok(.init(body: .json(Components.Schemas.Endpoint(changed))))
    }

    // MARK: Zonal shifts

    func listZonalShifts(_ input: Operations.ListZonalShifts.Input) async throws -> Operations.ListZonalShifts.Output {
        .ok(.init(body: .json(try await service.current.zonalShifts(by: RequestPrincipal.get()).map { Components.Schemas.ZonalShift($0) })))
    }

    func startZonalShift(_ input: Operations.StartZonalShift.Input) async throws -> Operations.StartZonalShift.Output {
        let body = switch input.body { case .json(let json): json }
        let principal = try RequestPrincipal.get()
        let request = StartZonalShiftRequest(body)
        // Refusing a shift that would leave a service dark needs the health of the moment.
        let health = principal.isOperator ? await gatewayHealth().observed : ObservedHealth()
        let now = service.clock()
        let started = try await change(Operations.StartZonalShift.id) {
            try $0.startZonalShift(request, by: principal, now: now, health: health)
        }
        let shown = Components.Schemas.ZonalShift(started.shift)
        return started.replaced ? .ok(.init(body: .json(shown))) : .created(.init(body: .json(shown)))
    }

    func endZonalShift(_ input: Operations.EndZonalShift.Input) async throws -> Operations.EndZonalShift.Output {
        let principal = try RequestPrincipal.get()
        let ended = try await change(Operations.EndZonalShift.id) { try $0.endZonalShift(input.path.zone, by: principal) }
        return .ok(.init(body: .json(Components.Schemas.ZonalShift(ended))))
    }

    // MARK: The gateway's view

    func listNAT(_ input: Operations.ListNAT.Input) async throws -> Operations.ListNAT.Output {
        let principal = try RequestPrincipal.get()
        let catalog = await service.catalog
        let rows = await natTable()
        return .ok(.init(body: .json(principal.isOperator ? rows : rows.filter { row in
            principal.accountID.map { catalog.endpoint(row.endpoint)?.account == $0 } ?? false
        })))
    }

    func health(_ input: Operations.Health.Input) async throws -> Operations.Health.Output {
        let principal = try RequestPrincipal.get()
        let catalog = await service.catalog
        var report = await gatewayHealth()
        if let account = principal.accountID {
            // Backends of the account's own load balancers; zones of the endpoints it may see
            // (its own, and those connecting to its services).
            let visible = Set(catalog.endpoints.filter {
                $0.account == account || catalog.service($0.service)?.account == account
            }.map(\.id))
            report.backends = report.backends.filter { catalog.loadBalancer($0.loadBalancer)?.account == account }
            report.loadBalancers = report.loadBalancers.filter { catalog.loadBalancer($0.loadBalancer)?.account == account }
            report.zones = report.zones.filter { visible.contains($0.endpoint) }
        }
        let healthy = report.backends.allSatisfy(\.healthy) && report.zones.allSatisfy(\.healthy)
        return .ok(.init(body: .json(Components.Schemas.HealthReport(
            status: healthy ? .ok : .degraded, configSerial: Int(catalog.serial), backends: report.backends, loadBalancers: report.loadBalancers, zones: report.zones,
            zonalShifts: catalog.zonalShifts.map { Components.Schemas.ZonalShift($0, withReason: principal.isOperator) }))))
    }

    func explainDNS(_ input: Operations.ExplainDNS.Input) async throws -> Operations.ExplainDNS.Output {
        let principal = try RequestPrincipal.get()
        let catalog = await service.catalog
        // An account explains answers to its own VPCs' clients only: the answer shows ENIs.
        guard let vpc = catalog.vpc(input.query.vpc), principal.isOperator || vpc.account == principal.accountID else {
            throw ControlError.notFound("no VPC \(input.query.vpc) that \(principal) may see")
        }
        return .ok(.init(body: .json(try await explainer(input.query))))
    }

    func listEvents(_ input: Operations.ListEvents.Input) async throws -> Operations.ListEvents.Output {
        let principal = try RequestPrincipal.get()
        if let after = input.query.after, after < 0 {
            throw ControlError.invalid(issues: [ConfigIssue("after", "\(after) is not a sequence number", hint: "0 or the sequence of the last event seen")])
        }
        let after = UInt64(input.query.after ?? 0)
        // A stream only when asked for alone, by name (as EventSource does): `*/*` or JSON
        // (curl, fuzzers, the status page) gets the recent events and an end.
        let accepted = input.headers.accept.map(\.contentType)
        guard accepted.contains(.textEventStream), !accepted.contains(.json) else {
            let recent = service.events.recent(after: after, visibleTo: principal)
            return .ok(.init(body: .json(recent.map(Components.Schemas.Event.init))))
        }
        guard let events = service.events.subscribe(after: after, principal: principal) else {
            throw ControlError.conflict("\(EventBus.maxSubscribers) event streams are open already: close one, or read the recent events without text/event-stream")
        }
        return .ok(.init(body: .textEventStream(HTTPBody(events.map(Self.serverSentEvent), length: .unknown, iterationBehavior: .single))))
    }

    /// One event as the SSE format frames it (`id`, `event`, `data` lines, a blank line).
    static func serverSentEvent(_ event: ControlEvent) -> ArraySlice<UInt8> {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(Components.Schemas.Event(event))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return ArraySlice("id: \(event.sequence)\nevent: \(event.kind.rawValue)\ndata: \(data)\n\n".utf8)
    }

    func statusPage(_ input: Operations.StatusPage.Input) async throws -> Operations.StatusPage.Output {
        .ok(.init(body: .html(HTTPBody(StatusPage.html))))
    }

    func metrics(_ input: Operations.Metrics.Input) async throws -> Operations.Metrics.Output {
        let principal = try RequestPrincipal.get()
        guard principal.isOperator else {
            throw ControlError.forbidden(rule: "\(principal) may not read metrics: they count every account's traffic, so only the operator may")
        }
        counters.record(await service.catalog)
        counters.record(connections)
        await counters.collect()
        return .ok(.init(body: .plainText(HTTPBody(counters.render()))))
    }

    /// Runs a change through the service and counts it once committed.
    private func change<Value: Sendable>(
        _ operation: String, _ body: @Sendable (ControlPlane) throws -> Applied<Value>
    ) async throws -> Value {
        let value: Value
        do {
            value = try await service.perform(body)
        } catch let error as ControlError {
            // Refusals are events too, the caller's own (the operator sees every one).
            let principal = try RequestPrincipal.get()
            service.events.publish(EventDraft(
                .refusal, subject: operation, message: "\(operation) by \(principal) refused: \(error.message)",
                accounts: principal.accountID.map { [$0] } ?? []))
            throw error
        }
        counters.countChange(operation)
        return value
    }
}
