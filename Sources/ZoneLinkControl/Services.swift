import ZoneLinkCore

/// Endpoint services: the provider's side of the console.
extension ControlPlane {
    /// Creates a service owned by the principal's account (or the account the operator
    /// names), on that account's load balancers.
    public func createService(_ request: CreateServiceRequest, by principal: Principal) throws(ControlError) -> Applied<ServiceView> {
        let owner = try actingAccount(principal, requested: request.account, creating: "services")
        let own = catalog.loadBalancers.filter { $0.account == owner }.map(\.id)
        var issues: [ConfigIssue] = []
        for (r, resource) in request.resources.enumerated() {
            guard let lb = catalog.loadBalancer(resource.loadBalancer) else {
                issues.append(ConfigIssue(
                    "resources[\(r)].loadBalancer", "unknown load balancer '\(resource.loadBalancer)'",
                    hint: choices(own, "load balancer of account \(owner)")))
                continue
            }
            guard lb.account == owner else {
                throw .forbidden(rule: "load balancer \(lb.id) belongs to another account: a service uses its own account's load balancers")
            }
        }
        if let issue = Self.bandwidthIssue(request.connectionBandwidth) { issues.append(issue) }
        guard issues.isEmpty else { throw .invalid(issues: issues) }
        let id = try newID(request.id, prefix: "epsrv-", what: "endpoint service") { catalog.service($0) != nil }
        let record = ServiceRecord(
            id: id, account: owner, resources: request.resources,
            autoAcceptConnections: request.autoAcceptConnections ?? false, zoneAffinity: request.zoneAffinity ?? false,
            privateDomain: request.privateDomain, proxyProtocol: request.proxyProtocol ?? false,
            connectionBandwidth: request.connectionBandwidth, dataPlane: request.dataPlane ?? .relay)
        let changes: [StateChange] = [.putService(record)]
        let next = try applying(changes, subject: .service(id))
        return Applied(plane: next, changes: changes, value: next.view(of: next.catalog.service(id)!, for: principal))
    }

    /// The services the principal may see: its own, those whose whitelist holds it (the
    /// services it can connect to), or, for the operator, all; by ID.
    public func listServices(by principal: Principal) -> [ServiceView] {
        catalog.services.filter { maySee(principal, service: $0) }.sorted { $0.id < $1.id }.map { view(of: $0, for: principal) }
    }

    public func service(_ id: String, by principal: Principal) throws(ControlError) -> ServiceView {
        view(of: try existingService(id, visibleTo: principal), for: principal)
    }

    /// Changes auto-accept, zone affinity, the bandwidth cap and the data plane (the catalog's
    /// rules refuse a kernel service with a cap or PROXY protocol). Existing connections keep
    /// their state: those that followed auto-accept get it recorded. Open flows follow a new
    /// or lifted cap.
    public func updateService(_ id: String, _ request: UpdateServiceRequest, by principal: Principal) throws(ControlError) -> Applied<ServiceView> {
        let service = try existingService(id, visibleTo: principal)
        try requireProvider(principal, of: service, to: "change it")
        guard var record = state.service(id) else { throw fileManaged(id, change: "change it") }
        var changes: [StateChange] = []
        if let autoAccept = request.autoAcceptConnections, autoAccept != record.autoAcceptConnections {
            for endpoint in catalog.endpoints where endpoint.service == id && state.connection(of: endpoint.id) == nil {
                changes.append(.setConnection(ConnectionRecord(endpoint: endpoint.id, state: catalog.connection(of: endpoint))))
            }
            record.autoAcceptConnections = autoAccept
        }
        if let zoneAffinity = request.zoneAffinity { record.zoneAffinity = zoneAffinity }
        if request.removeConnectionBandwidth == true {
            guard request.connectionBandwidth == nil else {
                throw .invalid(issues: [ConfigIssue(
                    "connectionBandwidth", "a new cap and removeConnectionBandwidth contradict each other",
                    hint: "send one of them")])
            }
            record.connectionBandwidth = nil
        } else if let cap = request.connectionBandwidth {
            if let issue = Self.bandwidthIssue(cap) { throw .invalid(issues: [issue]) }
            record.connectionBandwidth = cap
        }
        if let dataPlane = request.dataPlane { record.dataPlane = dataPlane }
        changes.insert(.putService(record), at: 0)
        let next = try applying(changes, subject: .service(id))
        return Applied(plane: next, changes: changes, value: next.view(of: next.catalog.service(id)!, for: principal))
    }

    /// The problem with a requested cap, if any: the file's rule (`EndpointService.connectionBandwidthLimits`).
    static func bandwidthIssue(_ cap: Int?) -> ConfigIssue? {
        let limits = EndpointService.connectionBandwidthLimits
        guard let cap, !limits.contains(cap) else { return nil }
        return ConfigIssue(
            "connectionBandwidth", "\(cap) Mbit/s is not a bandwidth cap: a cap is at least \(limits.lowerBound) Mbit/s and at most \(limits.upperBound)",
            hint: "between \(limits.lowerBound) and \(limits.upperBound), or leave it out for no cap")
    }

    /// Deletes a service created through the API, with its whitelist; refused while it has
    /// endpoints. Returns the service as it was.
    public func deleteService(_ id: String, by principal: Principal) throws(ControlError) -> Applied<ServiceView> {
        let service = try existingService(id, visibleTo: principal)
        try requireProvider(principal, of: service, to: "delete it")
        guard state.service(id) != nil else { throw fileManaged(id, change: "delete it") }
        let endpoints = catalog.endpoints.filter { $0.service == id }.map(\.id).sorted()
        guard endpoints.isEmpty else {
            throw .conflict("\(id) still has endpoints: \(endpoints.joined(separator: ", ")); they must be deleted first")
        }
        let changes: [StateChange] = [.deleteService(id: id)] + state.whitelist.filter { $0.service == id }.map { .removeWhitelistEntry($0) }
        let next = try applying(changes)
        return Applied(plane: next, changes: changes, value: view(of: service, for: principal))
    }
}

/// A service's whitelist: the account IDs that may create endpoints of it.
extension ControlPlane {
    public func whitelist(of serviceID: String, by principal: Principal) throws(ControlError) -> [WhitelistEntry] {
        let service = try existingService(serviceID, visibleTo: principal)
        try requireProvider(principal, of: service, to: "see or change its whitelist")
        return whitelistEntries(service)
    }

    public func addToWhitelist(_ account: String, of serviceID: String, by principal: Principal) throws(ControlError) -> Applied<WhitelistEntry> {
        let service = try existingService(serviceID, visibleTo: principal)
        try requireProvider(principal, of: service, to: "see or change its whitelist")
        guard isAccountID(account) else {
            throw .invalid(issues: [ConfigIssue("account", "'\(account)' is not an account ID", hint: "write the 16-digit account ID")])
        }
        guard !service.whitelist.contains(account) else {
            throw .conflict("account \(account) is already on the whitelist of \(serviceID)")
        }
        let changes: [StateChange] = [.addWhitelistEntry(WhitelistRecord(service: serviceID, account: account))]
        let next = try applying(changes)
        return Applied(plane: next, changes: changes, value: WhitelistEntry(service: serviceID, account: account, origin: .api))
    }

    /// Removes an account added through the API; refused while that account has endpoints of
    /// the service (they would lose the right to exist).
    public func removeFromWhitelist(_ account: String, of serviceID: String, by principal: Principal) throws(ControlError) -> Applied<WhitelistEntry> {
        let service = try existingService(serviceID, visibleTo: principal)
        try requireProvider(principal, of: service, to: "see or change its whitelist")
        guard service.whitelist.contains(account) else {
            throw .notFound("account \(account) is not on the whitelist of \(serviceID)")
        }
        guard !fileWhitelist(serviceID).contains(account) else {
            throw fileManaged("account \(account) on the whitelist of \(serviceID)", change: "remove it")
        }
        if account != service.account {
            let endpoints = catalog.endpoints.filter { $0.service == serviceID && $0.account == account }.map(\.id).sorted()
            guard endpoints.isEmpty else {
                throw .conflict("account \(account) still has endpoints of \(serviceID): \(endpoints.joined(separator: ", ")); they must be deleted before it leaves the whitelist")
            }
        }
        let changes: [StateChange] = [.removeWhitelistEntry(WhitelistRecord(service: serviceID, account: account))]
        let next = try applying(changes)
        return Applied(plane: next, changes: changes, value: WhitelistEntry(service: serviceID, account: account, origin: .api))
    }
}
