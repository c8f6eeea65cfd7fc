import ZoneLinkCore

/// The result of a change: the plane to continue with (its state and a validated catalog
/// to publish), the rows to commit, and what the client gets back.
public struct Applied<Value: Sendable>: Sendable {
    public let plane: ControlPlane
    /// Commit these together, in one transaction, before acknowledging the request and
    /// before publishing `catalog`.
    public let changes: [StateChange]
    public let value: Value

    public var state: ControlState { plane.state }
    public var catalog: Catalog { plane.catalog }
}

/// The control plane's decisions, without I/O: who may do what to services, whitelists,
/// endpoints and connections, and what each change does to the state.
///
/// A plane is the config file's `Configuration` (`base`), the API's `ControlState`, and the
/// `Catalog` validated from both. Reads return views filtered for the principal; changes
/// return `Applied` with a new plane, or throw `ControlError`. The plane does not store
/// anything, serialise concurrent requests or publish catalogs: the shell holds the current
/// plane, runs one change at a time, commits `changes`, then swaps in the new plane and
/// publishes its catalog. IDs come from the injected `suffix` function.
public struct ControlPlane: Sendable {
    /// The config file as parsed (account references may be names).
    public let base: Configuration
    /// The config file's path, for messages and `ConfigError`.
    public let file: String
    public let state: ControlState
    /// `state.configuration(base: base)`, validated, with addresses allocated.
    public let catalog: Catalog
    let makeSuffix: @Sendable () -> String

    /// Validates the file's configuration merged with `state`. Throws every issue found,
    /// API objects named by ID (`endpoints[ep-x].vpc`), e.g. when a reloaded file took away
    /// what an API object needs.
    /// - Parameter suffix: returns the random part of generated IDs (`epsrv-` or `ep-` and
    ///   the suffix), lower-case letters and digits; see `randomSuffix(using:)`.
    public init(
        base: Configuration, file: String, state: ControlState = ControlState(), serial: UInt32 = 1,
        suffix: @escaping @Sendable () -> String
    ) throws(ConfigError) {
        do {
            self.catalog = try Catalog(configuration: state.configuration(base: base), file: file, serial: serial)
        } catch {
            throw ConfigError(file: file, issues: IssuePaths(base: base, state: state).rewrite(error.issues))
        }
        self.base = base
        self.file = file
        self.state = state
        self.makeSuffix = suffix
    }

    init(base: Configuration, file: String, state: ControlState, catalog: Catalog, makeSuffix: @escaping @Sendable () -> String) {
        self.base = base
        self.file = file
        self.state = state
        self.catalog = catalog
        self.makeSuffix = makeSuffix
    }

    /// Twelve lower-case letters and digits: a suffix for generated IDs.
    public static func randomSuffix(using generator: inout some RandomNumberGenerator, length: Int = 12) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    /// The plane for a reloaded config file, with the same API objects. `changes` remove
    /// orphans: whitelist entries of services that are gone or that the file now lists
    /// itself, and connection states of endpoints that are gone. Throws when the file and
    /// the API's objects do not fit together (keep the old plane then).
    public func reloading(base newBase: Configuration, file newFile: String) throws(ConfigError) -> Applied<Void> {
        let changes = orphans(under: newBase)
        let plane = try ControlPlane(
            base: newBase, file: newFile, state: state.applying(changes), serial: catalog.serial &+ 1, suffix: makeSuffix)
        return Applied(plane: plane, changes: changes, value: ())
    }

    /// The changes that remove what `newBase` leaves orphaned in the API's state: whitelist
    /// entries of services that are gone or that the file now lists itself, and connection
    /// states of endpoints that are gone. Pure and cheap: no validation.
    public func orphans(under newBase: Configuration) -> [StateChange] {
        var changes: [StateChange] = []
        let declaredServices = Dictionary(newBase.endpointServices.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for entry in state.whitelist {
            if let declared = declaredServices[entry.service] {
                if declared.whitelist.contains(entry.account) { changes.append(.removeWhitelistEntry(entry)) }
            } else if state.service(entry.service) == nil {
                changes.append(.removeWhitelistEntry(entry))
            }
        }
        let endpoints = Set(newBase.endpoints.map(\.id) + state.endpoints.map(\.id))
        for record in state.connections where !endpoints.contains(record.endpoint) {
            changes.append(.clearConnection(endpoint: record.endpoint))
        }
        return changes
    }

    /// Issues found in this plane's catalog outside the control plane (by DNS reading the
    /// zone files, say), with API objects named by ID as the plane's own issues are.
    public func userPaths(_ issues: [ConfigIssue]) -> [ConfigIssue] {
        IssuePaths(base: base, state: state).rewrite(issues)
    }

    // MARK: Shared steps of the operations

    /// The plane after `changes`, with a new catalog. Validation problems become `.invalid`,
    /// with the key paths of `subject` relative to its request.
    func applying(_ changes: [StateChange], subject: IssuePaths.Subject = .none) throws(ControlError) -> ControlPlane {
        let next = state.applying(changes)
        do {
            let catalog = try Catalog(configuration: next.configuration(base: base), file: file, serial: catalog.serial &+ 1)
            return ControlPlane(base: base, file: file, state: next, catalog: catalog, makeSuffix: makeSuffix)
        } catch {
            throw .invalid(issues: IssuePaths(base: base, state: next).rewrite(error.issues, relativeTo: subject))
        }
    }

    /// The account a new object belongs to: the principal's own, or the one the operator names.
    func actingAccount(_ principal: Principal, requested: String?, creating what: String) throws(ControlError) -> String {
        let named = requested.flatMap { name in catalog.accounts.first { $0.id == name || $0.name == name } }
        switch principal {
        case .account(let id):
            guard let requested else { return id }
            guard named?.id == id else {
                throw .forbidden(rule: "account \(id) cannot create \(what) for account \(requested): an account creates \(what) in its own name")
            }
            return id
        case .operator:
            guard let requested else {
                throw .invalid(issues: [ConfigIssue("account", "is missing", hint: "the operator creates \(what) for an account: give its ID")])
            }
            guard let account = named else {
                throw .invalid(issues: [ConfigIssue("account", "unknown account '\(requested)'", hint: choices(catalog.accounts.map(\.id), "account"))])
            }
            return account.id
        }
    }

    /// A requested ID if free, else a generated one.
    func newID(_ requested: String?, prefix: String, what: String, taken: (String) -> Bool) throws(ControlError) -> String {
        if let requested {
            guard !taken(requested) else { throw .conflict("\(what) \(requested) exists already") }
            return requested
        }
        for _ in 0..<16 {
            let candidate = prefix + makeSuffix()
            if !taken(candidate) { return candidate }
        }
        throw .conflict("no free \(what) ID was found in 16 tries; give an id")
    }

    /// The service `id` if `principal` may see it. An unknown service and one the principal
    /// may not see get the same 404, word for word: a refusal must not tell another tenant
    /// which IDs exist.
    func existingService(_ id: String, visibleTo principal: Principal) throws(ControlError) -> EndpointService {
        guard let service = catalog.service(id), maySee(principal, service: service) else {
            throw .notFound(principal.isOperator ? "no endpoint service '\(id)'"
                : "no endpoint service '\(id)' that \(principal) may see (a service is seen by its provider, the accounts on its whitelist and the operator)")
        }
        return service
    }

    /// The endpoint `id` if `principal` may see it; unknown and invisible alike are 404.
    func existingEndpoint(_ id: String, visibleTo principal: Principal) throws(ControlError) -> Endpoint {
        guard let endpoint = catalog.endpoint(id), maySee(principal, endpoint: endpoint) else {
            throw .notFound(principal.isOperator ? "no endpoint '\(id)'"
                : "no endpoint '\(id)' that \(principal) may see (an endpoint is seen by its owner, its service's provider and the operator)")
        }
        return endpoint
    }

    func fileManaged(_ what: String, change: String) -> ControlError {
        .fileManaged("\(what) is declared in \(file); edit the file and reload (SIGHUP) to \(change)")
    }

    // MARK: Rules

    /// The provider of a service, or the operator: may change it, its whitelist, its connections.
    func isProvider(_ principal: Principal, of service: EndpointService) -> Bool {
        principal.isOperator || principal.accountID == service.account
    }

    func requireProvider(_ principal: Principal, of service: EndpointService, to action: String) throws(ControlError) {
        guard isProvider(principal, of: service) else {
            throw .forbidden(rule: "\(principal) is not the provider of \(service.id): only its provider or the operator may \(action)")
        }
    }

    /// A service is visible to its provider, to the accounts on its whitelist, and to the operator.
    func maySee(_ principal: Principal, service: EndpointService) -> Bool {
        principal.isOperator || principal.accountID.map(service.allows(account:)) == true
    }

    /// An endpoint is visible to its owner, to the provider of its service, and to the operator.
    func maySee(_ principal: Principal, endpoint: Endpoint) -> Bool {
        principal.isOperator || principal.accountID == endpoint.account
            || principal.accountID == catalog.service(endpoint.service)?.account
    }

    /// Its owner and the operator see where an endpoint sits in the consumer's VPC.
    func maySeePlacement(_ principal: Principal, endpoint: Endpoint) -> Bool {
        principal.isOperator || principal.accountID == endpoint.account
    }

    // MARK: Views

    func origin(ofService id: String) -> Origin { state.service(id) == nil ? .file : .api }
    func origin(ofEndpoint id: String) -> Origin { state.endpoint(id) == nil ? .file : .api }

    /// The whitelist entries the file declares for a service.
    func fileWhitelist(_ service: String) -> [String] {
        base.endpointServices.first { $0.id == service && state.service(service) == nil }?.whitelist ?? []
    }

    func whitelistEntries(_ service: EndpointService) -> [WhitelistEntry] {
        let declared = fileWhitelist(service.id)
        return service.whitelist.map {
            WhitelistEntry(service: service.id, account: $0, origin: declared.contains($0) ? .file : .api)
        }
    }

    var names: EndpointNames { EndpointNames(catalog) }

    func view(of service: EndpointService, for principal: Principal) -> ServiceView {
        let provider = isProvider(principal, of: service)
        return ServiceView(
            id: service.id, account: service.account, zones: service.zones,
            autoAcceptConnections: service.autoAcceptConnections, zoneAffinity: service.zoneAffinity,
            privateDomain: service.privateDomain, dnsName: names.service(service.id), origin: origin(ofService: service.id),
            resources: provider ? service.resources.map { ServiceResourceSpec(zone: $0.zone, loadBalancer: $0.loadBalancer) } : nil,
            whitelist: provider ? whitelistEntries(service) : nil,
            proxyProtocol: provider ? service.proxyProtocol : nil,
            connectionBandwidth: provider ? service.connectionBandwidth : nil,
            dataPlane: provider ? service.dataPlane : nil)
    }

    func view(of endpoint: Endpoint, for principal: Principal) -> EndpointView {
        let names = self.names
        let placement = maySeePlacement(principal, endpoint: endpoint) ? EndpointView.Placement(
            vpc: endpoint.vpc, securityGroups: endpoint.securityGroups, dnsName: endpoint.dnsName(names),
            enis: endpoint.enis.map {
                EndpointView.ENIView(
                    zone: $0.zone, vswitch: $0.vswitch, address: $0.address?.description ?? "",
                    dnsName: endpoint.dnsName(of: $0, names))
            }) : nil
        return EndpointView(
            id: endpoint.id, service: endpoint.service, account: endpoint.account, zones: endpoint.enis.map(\.zone),
            connection: catalog.connection(of: endpoint), origin: origin(ofEndpoint: endpoint.id), placement: placement)
    }
}

func choices(_ values: [String], _ what: String) -> String {
    values.isEmpty ? "there is no \(what) to choose" : "one of: \(values.joined(separator: ", "))"
}

/// A 16-digit account ID, as whitelists hold them.
func isAccountID(_ text: String) -> Bool {
    text.utf8.count == 16 && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
}
