import ZoneLinkCore

/// Endpoints: the consumer's side of the console.
extension ControlPlane {
    /// Creates an endpoint of a service whose whitelist holds the consumer (or that it owns),
    /// in one of the consumer's VPCs. Zones, vSwitches, addresses and security groups are
    /// checked by the catalog's own rules; missing addresses are allocated and recorded.
    /// Its connection starts `Connected` when the service auto-accepts, else `Disconnected`.
    public func createEndpoint(_ request: CreateEndpointRequest, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        let consumer = try actingAccount(principal, requested: request.account, creating: "endpoints")
        let service = try existingService(request.service, visibleTo: principal)
        guard service.allows(account: consumer) else {
            throw .forbidden(rule: "account \(consumer) is not on the whitelist of \(service.id): only accounts its provider whitelists may connect to it")
        }
        guard let vpc = catalog.vpc(request.vpc) else {
            let own = catalog.vpcs.filter { $0.account == consumer }.map(\.id)
            throw .invalid(issues: [ConfigIssue("vpc", "unknown VPC '\(request.vpc)'", hint: choices(own, "VPC of account \(consumer)"))])
        }
        guard vpc.account == consumer else {
            throw .forbidden(rule: "VPC \(vpc.id) belongs to another account: an endpoint is created in one of its own account's VPCs")
        }
        let zones = try requestedENIs(request.zones, in: vpc.id) { "zones[\($0)]" }
        let id = try newID(request.id, prefix: "ep-", what: "endpoint") { id in catalog.endpoint(id) != nil }
        let record = EndpointRecord(
            id: id, account: consumer, service: service.id, vpc: vpc.id, securityGroups: request.securityGroups ?? [], zones: zones)
        let connection = ConnectionRecord(endpoint: id, state: ConnectionAction.initialState(autoAccept: service.autoAcceptConnections))
        return try putting(record, with: [.setConnection(connection)], by: principal)
    }

    /// Applies `record` (and `others`), then records the addresses the catalog allocated to its
    /// ENIs: they keep them whatever the file declares later.
    private func putting(
        _ record: EndpointRecord, with others: [StateChange] = [], by principal: Principal
    ) throws(ControlError) -> Applied<EndpointView> {
        let next = try applying([.putEndpoint(record)] + others, subject: .endpoint(record.id))
        let placed = next.catalog.endpoint(record.id)!
        var recorded = record
        recorded.zones = placed.enis.map(ENIRecord.init)
        let changes: [StateChange] = [.putEndpoint(recorded)] + others
        let plane = ControlPlane(base: base, file: file, state: state.applying(changes), catalog: next.catalog, makeSuffix: makeSuffix)
        return Applied(plane: plane, changes: changes, value: plane.view(of: placed, for: principal))
    }

    /// The principal's endpoints, and the endpoints connecting to its services (as their
    /// provider sees them); the operator's: all; by ID.
    public func listEndpoints(by principal: Principal) -> [EndpointView] {
        catalog.endpoints.filter { maySee(principal, endpoint: $0) }.sorted { $0.id < $1.id }.map { view(of: $0, for: principal) }
    }

    public func endpoint(_ id: String, by principal: Principal) throws(ControlError) -> EndpointView {
        view(of: try existingEndpoint(id, visibleTo: principal), for: principal)
    }

    /// Adds an ENI in one more zone to an endpoint created through the API (its owner or the
    /// operator). The zone must be one of the service's and new to the endpoint; the vSwitch and
    /// address follow the rules of `createEndpoint` (a missing address is allocated and
    /// recorded). DNS and the gateway take the new ENI up with the catalog, and serve it as
    /// they serve the others: only while the connection is Connected.
    public func addEndpointZone(_ id: String, _ choice: ZoneChoice, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        let (endpoint, current) = try ownEndpointToChange(id, by: principal, change: "add a zone to it")
        guard !current.zones.contains(where: { $0.zone == choice.zone }) else {
            throw .conflict("\(id) has an ENI in \(choice.zone) already: an endpoint has one ENI per zone; remove it first to move it")
        }
        var record = current
        record.zones += try requestedENIs([choice], in: endpoint.vpc) { _ in "" }
        let added = record.zones.count - 1
        do {
            return try putting(record, by: principal)
        } catch .invalid(let issues) {
            // The request is one zone: name its fields (`vswitch`), not the endpoint's list.
            throw .invalid(issues: issues.map { issue in
                var issue = issue
                if let rest = IssuePaths.remainder(of: issue.keyPath, after: "zones[\(added)]") { issue.keyPath = rest.isEmpty ? "zone" : rest }
                return issue
            })
        } catch {
            throw error
        }
    }

    /// Removes an endpoint's ENI in one zone (its owner or the operator): its names leave DNS
    /// and its flows are closed with the catalog. The last zone cannot be removed: an endpoint
    /// has at least one ENI (delete the endpoint instead).
    public func removeEndpointZone(_ id: String, zone: String, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        let (_, current) = try ownEndpointToChange(id, by: principal, change: "remove a zone of it")
        guard current.zones.contains(where: { $0.zone == zone }) else {
            throw .notFound("\(id) has no ENI in zone '\(zone)'; its zones: \(current.zones.map(\.zone).joined(separator: ", "))")
        }
        guard current.zones.count > 1 else {
            throw .conflict("\(zone) is the last zone of \(id): an endpoint keeps at least one ENI; delete the endpoint instead")
        }
        var record = current
        record.zones.removeAll { $0.zone == zone }
        let changes: [StateChange] = [.putEndpoint(record)]
        let next = try applying(changes, subject: .endpoint(id))
        return Applied(plane: next, changes: changes, value: next.view(of: next.catalog.endpoint(id)!, for: principal))
    }

    /// The endpoint and its record, when `principal` may change it here: it sees it, owns it
    /// (or is the operator), and it was created through the API.
    private func ownEndpointToChange(
        _ id: String, by principal: Principal, change: String
    ) throws(ControlError) -> (Endpoint, EndpointRecord) {
        let endpoint = try existingEndpoint(id, visibleTo: principal)
        guard principal.isOperator || principal.accountID == endpoint.account else {
            throw .forbidden(rule: "\(principal) does not own \(id): only its owner or the operator may \(change)")
        }
        guard let record = state.endpoint(id) else { throw fileManaged(id, change: change) }
        return (endpoint, record)
    }

    /// The ENI records a request asks for in VPC `vpc`: addresses parsed and checked against
    /// the ones the catalog already gives to ENIs there (allocated ones too: taking one would
    /// move it); the rest of the rules are the catalog's. `path` names choice `i` in issues.
    private func requestedENIs(
        _ choices: [ZoneChoice], in vpc: String, path: (Int) -> String
    ) throws(ControlError) -> [ENIRecord] {
        var taken: [IPv4Address: String] = [:]
        for endpoint in catalog.endpoints where endpoint.vpc == vpc {
            for eni in endpoint.enis { if let address = eni.address { taken[address] = "\(endpoint.id) in \(eni.zone)" } }
        }
        var issues: [ConfigIssue] = []
        let records = choices.enumerated().map { i, choice in
            var eni = ENIRecord(zone: choice.zone, vswitch: choice.vswitch)
            guard let text = choice.address else { return eni }
            let key = path(i).isEmpty ? "address" : "\(path(i)).address"
            guard let address = IPv4Address(text) else {
                issues.append(ConfigIssue(key, "'\(text)' is not an IPv4 address", hint: "write four decimal octets such as 10.10.2.50, or leave it out to have one allocated"))
                return eni
            }
            if let owner = taken[address] {
                issues.append(ConfigIssue(key, "\(address) is already taken in VPC \(vpc) by the ENI of \(owner)", hint: "choose a free address, or leave it out to have one allocated"))
            }
            eni.address = address
            return eni
        }
        guard issues.isEmpty else { throw .invalid(issues: issues) }
        return records
    }

    /// Deletes an endpoint created through the API, with its connection. Returns it as it was.
    public func deleteEndpoint(_ id: String, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        let endpoint = try existingEndpoint(id, visibleTo: principal)
        guard principal.isOperator || principal.accountID == endpoint.account else {
            let provider = principal.accountID == catalog.service(endpoint.service)?.account
            throw .forbidden(rule: "\(principal) does not own \(id): only its owner or the operator may delete it"
                + (provider ? "; as the provider of \(endpoint.service), reject or disconnect its connection instead" : ""))
        }
        guard state.endpoint(id) != nil else { throw fileManaged(id, change: "delete it") }
        let changes: [StateChange] = [.deleteEndpoint(id: id), .clearConnection(endpoint: id)]
        let next = try applying(changes)
        return Applied(plane: next, changes: changes, value: view(of: endpoint, for: principal))
    }
}

/// The connections of a service: the provider accepts, rejects and disconnects them.
extension ControlPlane {
    public func connections(of serviceID: String, by principal: Principal) throws(ControlError) -> [EndpointView] {
        let service = try existingService(serviceID, visibleTo: principal)
        try requireProvider(principal, of: service, to: "see, accept, reject or disconnect its connections")
        return catalog.endpoints.filter { $0.service == serviceID }.sorted { $0.id < $1.id }.map { view(of: $0, for: principal) }
    }

    /// Moves the connection of `endpointID` to `serviceID` as `action` says
    /// (`ConnectionAction.appliesTo`); other transitions are conflicts naming the current state.
    public func changeConnection(
        _ action: ConnectionAction, service serviceID: String, endpoint endpointID: String, by principal: Principal
    ) throws(ControlError) -> Applied<EndpointView> {
        let service = try existingService(serviceID, visibleTo: principal)
        try requireProvider(principal, of: service, to: "accept, reject or disconnect its connections")
        guard let endpoint = catalog.endpoint(endpointID), endpoint.service == serviceID else {
            throw .notFound("\(serviceID) has no endpoint '\(endpointID)'")
        }
        let current = catalog.connection(of: endpoint)
        guard let target = action.apply(to: current) else {
            let from = action.appliesTo.map(\.rawValue).joined(separator: " or ")
            throw .conflict("the connection of \(endpointID) to \(serviceID) is \(current.rawValue); \(action.rawValue) applies to \(from) connections")
        }
        let changes: [StateChange] = [.setConnection(ConnectionRecord(endpoint: endpointID, state: target))]
        let next = try applying(changes)
        return Applied(plane: next, changes: changes, value: next.view(of: next.catalog.endpoint(endpointID)!, for: principal))
    }

    /// Disconnected or Rejected → Connected.
    public func accept(service: String, endpoint: String, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        try changeConnection(.accept, service: service, endpoint: endpoint, by: principal)
    }

    /// Disconnected or Connected → Rejected.
    public func reject(service: String, endpoint: String, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        try changeConnection(.reject, service: service, endpoint: endpoint, by: principal)
    }

    /// Connected → Disconnected.
    public func disconnect(service: String, endpoint: String, by principal: Principal) throws(ControlError) -> Applied<EndpointView> {
        try changeConnection(.disconnect, service: service, endpoint: endpoint, by: principal)
    }
}
