import Dispatch
import Synchronization

/// Checks a `Configuration` against the rules of `docs/config.md` and resolves it.
///
/// Each rule is a small function that reports with the key path of the offending value; all
/// run, so one pass lists every problem. `resolved` is meaningful only when `issues` is empty.
struct CatalogValidator: Sendable {
    private(set) var issues: [ConfigIssue] = []
    private(set) var resolved: Configuration
    /// Each endpoint ID's first index in `resolved.endpoints`: worked out for the uniqueness
    /// check, and kept as the catalog's index, so 100,000 IDs are hashed once, not twice.
    private(set) var endpointIndex: [String: Int] = [:]

    /// At most this many security groups per endpoint, as in the clouds.
    static let maxSecurityGroups = 5
    /// Allocation skips the vSwitch's network address and its first three host addresses.
    static let reservedLowAddresses: UInt32 = 4

    init(_ configuration: Configuration) {
        self.resolved = configuration
    }

    private mutating func report(_ path: String, _ problem: String, hint: String) {
        issues.append(ConfigIssue(path, problem, hint: hint))
    }

    mutating func validate() {
        checkNames()
        checkAccounts()
        let accountIDs = resolveAccountReferences()
        checkUnique(resolved.vpcs.map(\.id), path: { "vpcs[\($0)].id" }, what: "VPC")
        checkUnique(resolved.vpcs.flatMap { $0.vswitches.map(\.id) }, path: vswitchPath, what: "vSwitch")
        checkUnique(resolved.loadBalancers.map(\.id), path: { "loadBalancers[\($0)].id" }, what: "load balancer")
        checkUnique(resolved.endpointServices.map(\.id), path: { "endpointServices[\($0)].id" }, what: "endpoint service")
        endpointIndex = checkUnique(resolved.endpoints.map(\.id), path: { "endpoints[\($0)].id" }, what: "endpoint")
        // The generated names' check reads the endpoints and reports, nothing else, and costs
        // as much as the endpoints' own checks (a tenth of a second at 100,000 endpoints, on
        // the way of every start and reload): it runs on a copy beside the checks that follow,
        // and its issues go back where it reports them, so the list reads as if in turn.
        let namesReportAt = issues.count
        let generatedNames = Mutex<[ConfigIssue]>([])
        let beside = DispatchGroup()
        DispatchQueue.global().async(group: beside) { [self] in
            var copy = self
            copy.issues = []
            copy.checkGeneratedNames()
            generatedNames.withLock { $0 = copy.issues }
        }
        for (v, vpc) in resolved.vpcs.enumerated() {
            checkUnique(vpc.securityGroups.map(\.id), path: { "vpcs[\(v)].securityGroups[\($0)].id" }, what: "security group")
        }
        checkVPCs()
        checkLoadBalancers(accountIDs)
        checkServices(accountIDs)
        checkEndpoints(accountIDs)
        beside.wait()
        issues.insert(contentsOf: generatedNames.withLock { $0 }, at: namesReportAt)
        checkListeners()
        checkSecondaries()
        checkHost()
        checkLimits()
        guard issues.isEmpty else { return }
        checkAddressOwnership(ownedAddressesByVPC())
        guard issues.isEmpty else { return }
        allocateENIAddresses()
        guard issues.isEmpty else { return }
        // After allocation: the allocated addresses are owned too.
        checkHostNamespaceAddresses(ownedAddressesByVPC())
    }

    // MARK: Limits

    /// The control API's connections come out of the descriptor reserve, so the reserve must
    /// hold them and ZoneLink's own needs; and a client's NAT ports cannot exceed its flows.
    private mutating func checkLimits() {
        let needed = resolved.control.connections + DescriptorSettings.ownNeeds
        if resolved.descriptors.reserve < needed {
            report("descriptors.reserve", "\(resolved.descriptors.reserve) leaves no room for control.connections (\(resolved.control.connections)) and ZoneLink's own \(DescriptorSettings.ownNeeds) descriptors",
                   hint: "raise it to at least \(needed), or lower control.connections")
        }
        let limits = resolved.gateway.limits
        if limits.flowsPerClient > limits.flows {
            report("gateway.limits.flowsPerClient", "\(limits.flowsPerClient) is above gateway.limits.flows (\(limits.flows))", hint: "at most \(limits.flows)")
        }
        if limits.flowsPerEndpoint > limits.flows {
            report("gateway.limits.flowsPerEndpoint", "\(limits.flowsPerEndpoint) is above gateway.limits.flows (\(limits.flows))", hint: "at most \(limits.flows)")
        }
    }

    // MARK: Names

    private mutating func checkNames() {
        if !isLabel(resolved.region) {
            report("region", "'\(resolved.region)' is not a DNS label", hint: "letters, digits and '-', e.g. eu-central-1")
        }
        let domain = resolved.domain.trimmingTrailingDot
        if !isDomainName(domain) {
            report("domain", "'\(resolved.domain)' is not a domain name", hint: "dot-separated labels of letters, digits and '-', e.g. privatelink.internal")
        }
        for (i, service) in resolved.endpointServices.enumerated() {
            if !service.id.hasPrefix("epsrv-") || !isLabel(service.id) {
                report("endpointServices[\(i)].id", "'\(service.id)' is not a service ID", hint: "start it with 'epsrv-' and use only a-z, 0-9 and '-' (it becomes a DNS label)")
            }
        }
        checkPrivateDomains(generated: domain.lowercased())
        for (i, endpoint) in resolved.endpoints.enumerated() {
            if !endpoint.id.hasPrefix("ep-") || !isLabel(endpoint.id) {
                report("endpoints[\(i)].id", "'\(endpoint.id)' is not an endpoint ID", hint: "start it with 'ep-' and use only a-z, 0-9 and '-' (it becomes a DNS label)")
                continue
            }
            for (z, eni) in endpoint.enis.enumerated() where !isLabel(endpoint.id, joinedTo: eni.zone) {
                report("endpoints[\(i)].zones[\(z)].zone", "'\(endpoint.id)-\(eni.zone)' is not a DNS label", hint: "zone names and IDs use a-z, 0-9 and '-', 63 characters at most together")
            }
        }
        for (v, vpc) in resolved.vpcs.enumerated() {
            for (s, vswitch) in vpc.vswitches.enumerated() where !isLabel(vswitch.zone) {
                report("vpcs[\(v)].vswitches[\(s)].zone", "'\(vswitch.zone)' is not a zone name", hint: "letters, digits and '-', e.g. eu-central-1b")
            }
        }
    }

    /// A service's `privateDomain` is answered in every VPC with an endpoint of the service,
    /// ahead of forwarding: one that covered a public name, an operator's static zone or
    /// another service's domain would capture those names for its provider. So a private
    /// domain lies under a suffix the operator allows (`dns.privateDomainSuffixes`) and
    /// overlaps neither the generated domain nor another private domain (equal, above or
    /// below). Static zones are checked where their files are read (`loadStaticZones`).
    private mutating func checkPrivateDomains(generated domain: String) {
        var suffixes: [String] = []
        for (i, suffix) in resolved.dns.privateDomainSuffixes.enumerated() {
            let name = suffix.lowercased().trimmingTrailingDot
            if isDomainName(name) && name.contains(".") {
                suffixes.append(name)
            } else {
                report("dns.privateDomainSuffixes[\(i)]", "'\(suffix)' is not a domain of at least two labels", hint: "write the parent domain providers may use, e.g. provider.example")
            }
        }
        var claimed: [(name: String, index: Int)] = []
        for (i, service) in resolved.endpointServices.enumerated() {
            guard let privateDomain = service.privateDomain else { continue }
            let path = "endpointServices[\(i)].privateDomain"
            let name = privateDomain.lowercased().trimmingTrailingDot
            if !isDomainName(name) || !name.contains(".") {
                report(path, "'\(privateDomain)' is not a domain name", hint: "write a name such as api.provider.example")
            } else if domainsOverlap(name, domain) {
                report(path, "'\(privateDomain)' overlaps the generated domain \(domain)", hint: "choose a name outside \(domain) that does not contain it")
            } else if !suffixes.contains(where: { name == $0 || name.hasSuffix("." + $0) }) {
                report(path, "'\(privateDomain)' lies under no suffix the operator allows for private domains",
                       hint: suffixes.isEmpty ? "the operator lists allowed parents in dns.privateDomainSuffixes; none are listed"
                                              : "use a name under one of: \(suffixes.joined(separator: ", ")) (dns.privateDomainSuffixes)")
            } else if let other = claimed.first(where: { domainsOverlap($0.name, name) }) {
                report(path, "'\(privateDomain)' overlaps the private domain \(other.name) of endpointServices[\(other.index)]",
                       hint: "each service's private domain is its own: neither equal to, inside nor above another's")
            } else {
                claimed.append((name, i))
            }
        }
    }

    /// Every generated name stands for one endpoint. An endpoint's label (`ep-x`) and its
    /// zonal labels (`ep-x-<zone>`, for every zone of the region, also those it has no ENI in
    /// yet) are compared case-insensitively, as DNS compares them: an endpoint whose ID were
    /// another's zonal label (`ep-api1-eu-central-1b`) would make that name answer with both
    /// tenants' addresses. The later object of a clash is the one reported; through the API
    /// that is always the new one.
    private mutating func checkGeneratedNames() {
        let zones = Set(resolved.vpcs.flatMap { $0.vswitches.map { $0.zone.lowercased() } }).sorted()
        let labels = resolved.endpoints.map { $0.id.lowercased() }
        var owner: [String: Int] = [:]
        owner.reserveCapacity(labels.count)
        // The lengths of the labels in `owner`: a zonal label of another length is no endpoint's
        // ID, and is then not built (300,000 strings at 100,000 endpoints in three zones).
        var lengths: Set<Int> = []
        for (i, label) in labels.enumerated() where owner[label] == nil {
            owner[label] = i
            lengths.insert(label.utf8.count)
        }
        let asciiZones = zones.map { zone in zone.utf8.allSatisfy { $0 < 0x80 } }
        for (i, endpoint) in resolved.endpoints.enumerated() {
            let label = labels[i]
            if let first = owner[label], first != i {
                let earlier = resolved.endpoints[first].id
                if earlier != endpoint.id {  // exact duplicates are checkUnique's
                    report("endpoints[\(i)].id", "'\(endpoint.id)' names the same DNS label as endpoints[\(first)].id '\(earlier)'",
                           hint: "DNS names ignore case: choose another ID")
                }
                continue
            }
            let asciiID = endpoint.id.utf8.allSatisfy { $0 < 0x80 }
            for (zoneIndex, zone) in zones.enumerated() {
                // ASCII lower-cases letter by letter, so the label's length is the parts' lengths.
                if asciiID && asciiZones[zoneIndex] && !lengths.contains(endpoint.id.utf8.count + 1 + zone.utf8.count) { continue }
                let zonal = EndpointNames.zonalLabel(ENIID(endpoint: endpoint.id, zone: zone))
                guard let other = owner[zonal], other != i else { continue }
                if other > i {
                    report("endpoints[\(other)].id", "'\(resolved.endpoints[other].id)' is a generated name of endpoints[\(i)] '\(endpoint.id)' (its name in zone \(zone))",
                           hint: "choose an ID that is no other endpoint's zonal name")
                } else {
                    report("endpoints[\(i)].id", "'\(endpoint.id)' would have the name '\(zonal)' in zone \(zone), which is the ID of endpoints[\(other)]",
                           hint: "choose an ID whose zonal names are no other endpoint's ID")
                }
            }
        }
        var services: [String: Int] = [:]
        for (i, service) in resolved.endpointServices.enumerated() {
            if let first = services[service.id.lowercased()], resolved.endpointServices[first].id != service.id {
                report("endpointServices[\(i)].id", "'\(service.id)' names the same DNS label as endpointServices[\(first)].id '\(resolved.endpointServices[first].id)'",
                       hint: "DNS names ignore case: choose another ID")
            } else if services[service.id.lowercased()] == nil {
                services[service.id.lowercased()] = i
            }
        }
    }

    // MARK: Accounts

    private mutating func checkAccounts() {
        checkUnique(resolved.accounts.map(\.id), path: { "accounts[\($0)].id" }, what: "account ID")
        checkUnique(resolved.accounts.map(\.name), path: { "accounts[\($0)].name" }, what: "account name")
        for (i, account) in resolved.accounts.enumerated() where !isAccountID(account.id) {
            report("accounts[\(i)].id", "'\(account.id)' is not an account ID", hint: "write the 16-digit account ID in quotes")
        }
    }

    /// Replaces account names by IDs everywhere; reports references to unknown accounts.
    private mutating func resolveAccountReferences() -> Set<String> {
        var byName: [String: String] = [:]
        for account in resolved.accounts {
            byName[account.name] = account.id
            byName[account.id] = account.id
        }
        let known = resolved.accounts.map(\.name).joined(separator: ", ")
        func resolve(_ reference: String, at path: String, into issues: inout [ConfigIssue]) -> String {
            if let id = byName[reference] { return id }
            issues.append(ConfigIssue(path, "unknown account '\(reference)'", hint: known.isEmpty ? "declare it under accounts" : "one of: \(known)"))
            return reference
        }
        for i in resolved.vpcs.indices {
            resolved.vpcs[i].account = resolve(resolved.vpcs[i].account, at: "vpcs[\(i)].account", into: &issues)
        }
        for i in resolved.loadBalancers.indices {
            resolved.loadBalancers[i].account = resolve(resolved.loadBalancers[i].account, at: "loadBalancers[\(i)].account", into: &issues)
        }
        for i in resolved.endpointServices.indices {
            resolved.endpointServices[i].account = resolve(resolved.endpointServices[i].account, at: "endpointServices[\(i)].account", into: &issues)
            for (w, entry) in resolved.endpointServices[i].whitelist.enumerated() where !isAccountID(entry) {
                report("endpointServices[\(i)].whitelist[\(w)]", "'\(entry)' is not an account ID", hint: "write 16-digit account IDs in quotes")
            }
        }
        for i in resolved.endpoints.indices {
            resolved.endpoints[i].account = resolve(resolved.endpoints[i].account, at: "endpoints[\(i)].account", into: &issues)
        }
        return Set(resolved.accounts.map(\.id))
    }

    // MARK: VPCs

    private mutating func checkVPCs() {
        for (v, vpc) in resolved.vpcs.enumerated() {
            for (s, vswitch) in vpc.vswitches.enumerated() {
                if !vpc.cidr.contains(vswitch.cidr) {
                    report("vpcs[\(v)].vswitches[\(s)].cidr", "\(vswitch.cidr) is not inside the VPC's \(vpc.cidr)", hint: "choose a block inside \(vpc.cidr)")
                }
                for (t, other) in vpc.vswitches.enumerated().prefix(s) where other.cidr.overlaps(vswitch.cidr) {
                    report("vpcs[\(v)].vswitches[\(s)].cidr", "\(vswitch.cidr) overlaps vSwitch \(other.id) (\(other.cidr))", hint: "vSwitches of one VPC must not overlap; see vpcs[\(v)].vswitches[\(t)]")
                }
            }
            if let netns = vpc.netns, !isInterfaceName(netns) {
                report("vpcs[\(v)].netns", "'\(netns)' is not a namespace name", hint: "letters, digits, '-', '_' and '.', at most 15 characters")
            }
            if let interface = vpc.interface {
                if !isInterfaceName(interface) {
                    report("vpcs[\(v)].interface", "'\(interface)' is not an interface name", hint: "at most 15 characters, e.g. br0")
                }
            }
        }
    }

    // MARK: Load balancers

    private mutating func checkLoadBalancers(_ accounts: Set<String>) {
        for (l, lb) in resolved.loadBalancers.enumerated() {
            let path = "loadBalancers[\(l)]"
            guard let vpc = resolved.vpcs.first(where: { $0.id == lb.vpc }) else {
                report("\(path).vpc", "unknown VPC '\(lb.vpc)'", hint: hintList(resolved.vpcs.map(\.id), "VPC"))
                continue
            }
            if accounts.contains(lb.account), vpc.account != lb.account {
                report("\(path).vpc", "VPC \(vpc.id) belongs to another account", hint: "a load balancer lives in a VPC of its own account")
            }
            if !vpc.vswitches.contains(where: { $0.zone == lb.zone }) {
                report("\(path).zone", "VPC \(vpc.id) has no vSwitch in zone '\(lb.zone)'", hint: hintList(Set(vpc.vswitches.map(\.zone)).sorted(), "zone"))
            }
            if let backup = lb.backupZone { checkBackupZone(backup, of: lb, in: vpc, at: path) }
            for (n, address) in lb.natAddresses.enumerated() where !vpc.cidr.contains(address) {
                report("\(path).natAddresses[\(n)]", "\(address) is not inside VPC \(vpc.id) (\(vpc.cidr))", hint: "NAT addresses are provider-side addresses inside \(vpc.cidr)")
            }
            if lb.natAddresses.isEmpty {
                report("\(path).natAddresses", "is missing", hint: "give at least one provider-side source address inside \(vpc.cidr)")
            }
            if let address = lb.address {
                if !vpc.cidr.contains(address) {
                    report("\(path).address", "\(address) is not inside VPC \(vpc.id) (\(vpc.cidr))", hint: "an external load balancer's address lies inside its VPC")
                }
                for (i, listener) in lb.listeners.enumerated() where !listener.backends.isEmpty {
                    report("\(path).listeners[\(i)].backends", "an external load balancer (address set) has no backends", hint: "remove the backends or the address")
                }
            }
            if lb.listeners.isEmpty {
                report("\(path).listeners", "is missing", hint: "add at least one listener: {protocol: tcp, port: 80}")
            }
            var seen: [String: Int] = [:]
            for (i, listener) in lb.listeners.enumerated() {
                let key = "\(listener.protocol.rawValue)/\(listener.port)"
                if let first = seen[key] {
                    report("\(path).listeners[\(i)].port", "\(key) is already a listener", hint: "see \(path).listeners[\(first)]")
                }
                seen[key] = seen[key] ?? i
                if lb.address == nil && listener.backends.isEmpty {
                    report("\(path).listeners[\(i)].backends", "is empty", hint: "add backends, or set the load balancer's address to use an external one")
                }
                for (b, backend) in listener.backends.enumerated() where !vpc.cidr.contains(backend.address) {
                    report("\(path).listeners[\(i)].backends[\(b)].address", "\(backend.address) is not inside VPC \(vpc.id) (\(vpc.cidr))", hint: "backends are servers inside the provider VPC")
                }
                if listener.healthCheck.timeout <= .zero || listener.healthCheck.interval <= .zero {
                    report("\(path).listeners[\(i)].healthCheck", "interval and timeout must be positive", hint: "e.g. interval: 2s, timeout: 5s")
                }
            }
        }
    }

    // MARK: Services

    private mutating func checkServices(_ accounts: Set<String>) {
        for (s, service) in resolved.endpointServices.enumerated() {
            let path = "endpointServices[\(s)]"
            if service.resources.isEmpty {
                report("\(path).resources", "is empty", hint: "add a resource per zone: {zone: …, loadBalancer: …}")
            }
            checkDataPlane(service, at: path)
            var zones: [String: Int] = [:]
            for (r, resource) in service.resources.enumerated() {
                if let first = zones[resource.zone] {
                    report("\(path).resources[\(r)].zone", "zone '\(resource.zone)' has a resource already", hint: "one load balancer per zone; see \(path).resources[\(first)]")
                }
                zones[resource.zone] = zones[resource.zone] ?? r
                guard let lb = resolved.loadBalancers.first(where: { $0.id == resource.loadBalancer }) else {
                    report("\(path).resources[\(r)].loadBalancer", "unknown load balancer '\(resource.loadBalancer)'", hint: hintList(resolved.loadBalancers.map(\.id), "load balancer"))
                    continue
                }
                if lb.zone != resource.zone {
                    report("\(path).resources[\(r)].loadBalancer", "\(lb.id) is in zone \(lb.zone), not \(resource.zone)", hint: "use a load balancer in \(resource.zone), or change the resource's zone")
                }
                if accounts.contains(service.account), lb.account != service.account {
                    report("\(path).resources[\(r)].loadBalancer", "\(lb.id) belongs to another account", hint: "a service uses its own account's load balancers")
                }
            }
        }
    }

    /// A kernel NAT rewrites packets and never holds a flow's bytes: it cannot write a PROXY
    /// protocol header in front of them, nor hold them back to a bandwidth cap. Those need the relay.
    private mutating func checkDataPlane(_ service: EndpointService, at path: String) {
        guard service.dataPlane == .kernel else { return }
        if service.proxyProtocol {
            report("\(path).dataPlane", "kernel cannot send PROXY protocol v2 headers: the kernel NAT rewrites packets and never writes bytes of its own",
                   hint: "use dataPlane: relay (the default) for proxyProtocol: v2, or turn proxyProtocol off")
        }
        if service.connectionBandwidth != nil {
            report("\(path).dataPlane", "kernel cannot cap connectionBandwidth: only the relay holds a flow's bytes back to a cap",
                   hint: "use dataPlane: relay (the default) for a bandwidth cap, or remove connectionBandwidth")
        }
        // The kernel path links namespaces with veth pairs: the host's own namespace is never rewired.
        for resource in service.resources {
            guard let lb = resolved.loadBalancers.first(where: { $0.id == resource.loadBalancer }) else { continue }
            if let vpc = resolved.vpcs.first(where: { $0.id == lb.vpc }), vpc.netns == nil {
                report("\(path).dataPlane", "kernel needs the provider VPC \(vpc.id) (of \(lb.id)) in a network namespace of its own",
                       hint: "give \(vpc.id) a netns, or use dataPlane: relay")
            }
            // A NAT address is either local in the provider's namespace (the relay binds it) or
            // routed to the gateway namespace (the kernel rewrites to it), never both.
            let relayed = resolved.endpointServices.filter { $0.dataPlane == .relay && $0.resources.contains { $0.loadBalancer == lb.id } }
            if let other = relayed.first {
                report("\(path).dataPlane", "load balancer \(lb.id) also serves \(other.id), whose dataPlane is relay: a load balancer's NAT addresses belong to one data plane",
                       hint: "give both services the same dataPlane, or this one a load balancer of its own")
            }
        }
        for endpoint in resolved.endpoints where endpoint.service == service.id {
            if let vpc = resolved.vpcs.first(where: { $0.id == endpoint.vpc }), vpc.netns == nil {
                report("\(path).dataPlane", "kernel needs the consumer VPC \(vpc.id) (of endpoint \(endpoint.id)) in a network namespace of its own",
                       hint: "give \(vpc.id) a netns, or use dataPlane: relay")
            }
        }
    }

    // MARK: Endpoints

    private mutating func checkEndpoints(_ accounts: Set<String>) {
        // Services and VPCs by ID (the first of a duplicate, as a search from the start finds),
        // and each service's zones, worked out once rather than once per endpoint.
        var serviceIndex: [String: Int] = [:]
        for (s, service) in resolved.endpointServices.enumerated() where serviceIndex[service.id] == nil { serviceIndex[service.id] = s }
        let serviceZones = resolved.endpointServices.map(\.zones)
        var vpcIndex: [String: Int] = [:]
        for (v, vpc) in resolved.vpcs.enumerated() where vpcIndex[vpc.id] == nil { vpcIndex[vpc.id] = v }
        for (e, endpoint) in resolved.endpoints.enumerated() {
            // Key paths are spelt only for a problem (lazily): 400,000 of them at 100,000 endpoints.
            lazy var path = "endpoints[\(e)]"
            let serviceAt = serviceIndex[endpoint.service]
            let service = serviceAt.map { resolved.endpointServices[$0] }
            if service == nil {
                report("\(path).service", "unknown endpoint service '\(endpoint.service)'", hint: hintList(resolved.endpointServices.map(\.id), "service"))
            }
            let vpc = vpcIndex[endpoint.vpc].map { resolved.vpcs[$0] }
            if vpc == nil {
                report("\(path).vpc", "unknown VPC '\(endpoint.vpc)'", hint: hintList(resolved.vpcs.map(\.id), "VPC"))
            }
            if let vpc, accounts.contains(endpoint.account), vpc.account != endpoint.account {
                report("\(path).vpc", "VPC \(vpc.id) belongs to another account", hint: "an endpoint is created in one of its own account's VPCs")
            }
            if let service, accounts.contains(endpoint.account), !service.allows(account: endpoint.account) {
                report("\(path).account", "account \(endpoint.account) is not on the whitelist of \(service.id)", hint: "add \"\(endpoint.account)\" to endpointServices[\(serviceAt!)].whitelist")
            }
            if endpoint.securityGroups.count > Self.maxSecurityGroups {
                report("\(path).securityGroups", "has \(endpoint.securityGroups.count) groups", hint: "at most \(Self.maxSecurityGroups) security groups per endpoint")
            }
            for (g, group) in endpoint.securityGroups.enumerated() {
                if let vpc, !vpc.securityGroups.contains(where: { $0.id == group }) {
                    report("\(path).securityGroups[\(g)]", "unknown security group '\(group)' in VPC \(vpc.id)", hint: hintList(vpc.securityGroups.map(\.id), "security group"))
                }
            }
            if endpoint.enis.isEmpty {
                report("\(path).zones", "is empty", hint: "choose at least one zone of the service, with a vSwitch of the VPC")
            }
            // The first ENI of each zone: a few ENIs are compared in a loop, many through a table.
            var zones: [String: Int]? = endpoint.enis.count > 8 ? [:] : nil
            for (z, eni) in endpoint.enis.enumerated() {
                lazy var zpath = "\(path).zones[\(z)]"
                let first = zones != nil ? zones![eni.zone] : endpoint.enis[..<z].firstIndex { $0.zone == eni.zone }
                if let first {
                    report("\(zpath).zone", "zone '\(eni.zone)' is chosen twice", hint: "one ENI per zone; see \(path).zones[\(first)]")
                }
                if zones != nil, first == nil { zones![eni.zone] = z }
                if let service, let s = serviceAt, !serviceZones[s].contains(eni.zone) {
                    report("\(zpath).zone", "\(service.id) has no resource in zone '\(eni.zone)'", hint: hintList(service.zones, "zone"))
                }
                guard let vpc else { continue }
                guard let vswitch = vpc.vswitches.first(where: { $0.id == eni.vswitch }) else {
                    report("\(zpath).vswitch", "unknown vSwitch '\(eni.vswitch)' in VPC \(vpc.id)", hint: hintList(vpc.vswitches.map(\.id), "vSwitch"))
                    continue
                }
                if vswitch.zone != eni.zone {
                    report("\(zpath).vswitch", "\(vswitch.id) is in zone \(vswitch.zone), not \(eni.zone)", hint: hintList(vpc.vswitches.filter { $0.zone == eni.zone }.map(\.id), "vSwitch"))
                }
                if let address = eni.address, !vswitch.cidr.contains(address) {
                    report("\(zpath).address", "\(address) is not inside vSwitch \(vswitch.id) (\(vswitch.cidr))", hint: "choose an address in \(vswitch.cidr), or leave it out to have one allocated")
                } else if let address = eni.address, address == vswitch.cidr.first || address == vswitch.cidr.last, vswitch.cidr.length < 31 {
                    report("\(zpath).address", "\(address) is the network or broadcast address of \(vswitch.cidr)", hint: "choose a host address")
                }
            }
        }
    }

    // MARK: DNS listeners

    private mutating func checkListeners() {
        for (i, listener) in resolved.dns.listen.enumerated() {
            guard let vpcID = listener.vpc else {
                if listener.zone != nil {
                    report("dns.listen[\(i)].zone", "a zone needs a VPC", hint: "add vpc: to this listener, or remove zone:")
                }
                continue
            }
            guard let vpc = resolved.vpcs.first(where: { $0.id == vpcID }) else {
                report("dns.listen[\(i)].vpc", "unknown VPC '\(vpcID)'", hint: hintList(resolved.vpcs.map(\.id), "VPC"))
                continue
            }
            if let zone = listener.zone, !vpc.vswitches.contains(where: { $0.zone == zone }) {
                report("dns.listen[\(i)].zone", "VPC \(vpc.id) has no vSwitch in zone '\(zone)'", hint: hintList(Set(vpc.vswitches.map(\.zone)).sorted(), "zone"))
            }
        }
        checkUnique(resolved.dns.listen.map(\.address.description), path: { "dns.listen[\($0)].address" }, what: "listener address")
    }

    /// `backupZone`: another zone of the balancer's VPC, and NAT addresses split between the
    /// two (at least one in a backup-zone vSwitch, used while the balancer serves from there,
    /// and one outside, used in its own zone), so the two zones' hosts never share a NAT
    /// address. The kernel data path does not move a balancer: refused there.
    private mutating func checkBackupZone(_ backup: String, of lb: LoadBalancer, in vpc: VPC, at path: String) {
        if backup == lb.zone {
            report("\(path).backupZone", "is the load balancer's own zone (\(lb.zone))", hint: "name another zone, or leave the key out")
            return
        }
        guard vpc.vswitches.contains(where: { $0.zone == backup }) else {
            report("\(path).backupZone", "VPC \(vpc.id) has no vSwitch in zone '\(backup)'", hint: hintList(Set(vpc.vswitches.map(\.zone)).sorted(), "zone"))
            return
        }
        let inBackup = lb.natAddresses.filter { vpc.vswitch(holding: $0)?.zone == backup }
        if !lb.natAddresses.isEmpty && inBackup.isEmpty {
            report("\(path).natAddresses", "none lies in a vSwitch of the backup zone \(backup)", hint: "add a NAT address inside a \(backup) vSwitch of \(vpc.id): flows leave from it while the balancer serves from \(backup)")
        }
        if !lb.natAddresses.isEmpty && inBackup.count == lb.natAddresses.count {
            report("\(path).natAddresses", "all lie in the backup zone \(backup)", hint: "add a NAT address outside the \(backup) vSwitches: flows leave from it while the balancer serves from \(lb.zone)")
        }
        if resolved.endpointServices.contains(where: { $0.dataPlane == .kernel && $0.resources.contains { $0.loadBalancer == lb.id } }) {
            report("\(path).backupZone", "a kernel service (dataPlane: kernel) sends flows to \(lb.id), and the kernel data path does not move a load balancer to its backup zone", hint: "use dataPlane: relay for its services, or leave backupZone out")
        }
    }

    // MARK: Host placement

    /// `host`: a name other hosts can show, zones the region has, VPCs the file declares; a
    /// host that carries no zone (an empty list) would open nothing, which is a mistake.
    private mutating func checkHost() {
        guard let host = resolved.host else { return }
        if host.id.isEmpty || host.id.count > 63 || !host.id.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) {
            report("host.id", "'\(host.id)' is not a host name of 1 to 63 of a-z, 0-9 and '-'", hint: "e.g. gw-a")
        }
        let known = Set(resolved.vpcs.flatMap { $0.vswitches.map(\.zone) } + resolved.loadBalancers.map(\.zone))
        if let zones = host.zones {
            if zones.isEmpty { report("host.zones", "is empty: this host would carry no zone", hint: "name its zones, or leave the key out to carry every zone") }
            checkUnique(zones, path: { "host.zones[\($0)]" }, what: "zone")
            for (i, zone) in zones.enumerated() where !known.contains(zone) {
                report("host.zones[\(i)]", "'\(zone)' is no zone of a vSwitch or load balancer in this file", hint: "one of: \(known.sorted().joined(separator: ", "))")
            }
        }
        if let vpcs = host.vpcs {
            if vpcs.isEmpty { report("host.vpcs", "is empty: this host would carry no VPC", hint: "name its VPCs, or leave the key out to carry every VPC") }
            checkUnique(vpcs, path: { "host.vpcs[\($0)]" }, what: "VPC")
            let declared = Set(resolved.vpcs.map(\.id))
            for (i, vpc) in vpcs.enumerated() where !declared.contains(vpc) {
                report("host.vpcs[\(i)]", "unknown VPC '\(vpc)'", hint: "one of: \(declared.sorted().joined(separator: ", "))")
            }
        }
    }

    // MARK: Secondaries

    /// Each secondary's view must exist, and each key must open exactly one view: the key
    /// that signs a request is what selects the view.
    private mutating func checkSecondaries() {
        for (i, secondary) in resolved.dns.secondaries.enumerated() {
            let path = "dns.secondaries[\(i)]"
            if !isLabel(secondary.name) {
                report("\(path).name", "'\(secondary.name)' is not a name of letters, digits and hyphens", hint: "e.g. vpc1-zone-a")
            }
            if secondary.allowFrom.isEmpty {
                report("\(path).allowFrom", "is missing or empty", hint: "list the secondary's addresses or networks, e.g. [10.20.0.53/32]; transfers are never open")
            }
            guard let vpc = resolved.vpcs.first(where: { $0.id == secondary.vpc }) else {
                report("\(path).vpc", "unknown VPC '\(secondary.vpc)'", hint: hintList(resolved.vpcs.map(\.id), "VPC"))
                continue
            }
            if let zone = secondary.zone, !vpc.vswitches.contains(where: { $0.zone == zone }) {
                report("\(path).zone", "VPC \(vpc.id) has no vSwitch in zone '\(zone)'", hint: hintList(Set(vpc.vswitches.map(\.zone)).sorted(), "zone"))
            }
        }
        checkUnique(resolved.dns.secondaries.map(\.name), path: { "dns.secondaries[\($0)].name" }, what: "secondary")
        var keyViews: [String: Int] = [:]
        for (i, secondary) in resolved.dns.secondaries.enumerated() {
            guard let first = keyViews[secondary.key.name] else {
                keyViews[secondary.key.name] = i
                continue
            }
            let other = resolved.dns.secondaries[first]
            if other.vpc != secondary.vpc || other.zone != secondary.zone || other.key != secondary.key {
                report("dns.secondaries[\(i)].key.name", "key '\(secondary.key.name)' already opens another view at dns.secondaries[\(first)]",
                       hint: "a key selects one view: give each view its own key")
            }
        }
    }

    // MARK: Addresses

    /// Where an owned address is written. Spelt as a key path only when a problem is reported:
    /// a large catalog has hundreds of thousands of ENI addresses and rarely a problem with one.
    private enum AddressOwner {
        case dnsAddress(vpc: Int)
        case natAddress(loadBalancer: Int, index: Int)
        case loadBalancerAddress(Int)
        case eni(endpoint: Int, zone: Int)

        var path: String {
            switch self {
            case .dnsAddress(let v): "vpcs[\(v)].dnsAddress"
            case .natAddress(let l, let i): "loadBalancers[\(l)].natAddresses[\(i)]"
            case .loadBalancerAddress(let l): "loadBalancers[\(l)].address"
            case .eni(let e, let z): "endpoints[\(e)].zones[\(z)].address"
            }
        }
    }

    /// Addresses ZoneLink listens on or sends from inside a VPC: no two alike in one VPC.
    private func ownedAddresses(of vpcID: String) -> [(address: IPv4Address, owner: AddressOwner)] {
        var owned: [(address: IPv4Address, owner: AddressOwner)] = []
        if let v = resolved.vpcs.firstIndex(where: { $0.id == vpcID }), let dns = resolved.vpcs[v].dnsAddress {
            owned.append((dns, .dnsAddress(vpc: v)))
        }
        for (l, lb) in resolved.loadBalancers.enumerated() where lb.vpc == vpcID {
            owned += lb.natAddresses.enumerated().map { ($1, .natAddress(loadBalancer: l, index: $0)) }
            if let address = lb.address { owned.append((address, .loadBalancerAddress(l))) }
        }
        for (e, endpoint) in resolved.endpoints.enumerated() where endpoint.vpc == vpcID {
            for (z, eni) in endpoint.enis.enumerated() {
                if let address = eni.address { owned.append((address, .eni(endpoint: e, zone: z))) }
            }
        }
        return owned
    }

    /// `ownedAddresses(of:)` of every VPC, by index in `resolved.vpcs`, in one pass over the
    /// endpoints (VPC IDs are unique by now: a duplicate stops validation before this).
    private func ownedAddressesByVPC() -> [[(address: IPv4Address, owner: AddressOwner)]] {
        var vpcIndex: [String: Int] = [:]
        vpcIndex.reserveCapacity(resolved.vpcs.count)
        for (v, vpc) in resolved.vpcs.enumerated() where vpcIndex[vpc.id] == nil { vpcIndex[vpc.id] = v }
        var owned: [[(address: IPv4Address, owner: AddressOwner)]] = resolved.vpcs.indices.map { v in
            resolved.vpcs[v].dnsAddress.map { [($0, .dnsAddress(vpc: v))] } ?? []
        }
        for (l, lb) in resolved.loadBalancers.enumerated() {
            guard let v = vpcIndex[lb.vpc] else { continue }
            owned[v] += lb.natAddresses.enumerated().map { ($1, .natAddress(loadBalancer: l, index: $0)) }
            if let address = lb.address { owned[v].append((address, .loadBalancerAddress(l))) }
        }
        for (e, endpoint) in resolved.endpoints.enumerated() {
            guard let v = vpcIndex[endpoint.vpc] else { continue }
            for (z, eni) in endpoint.enis.enumerated() {
                if let address = eni.address { owned[v].append((address, .eni(endpoint: e, zone: z))) }
            }
        }
        return owned
    }

    /// For each address, the index of the first one before it that is the same, or -1. Found
    /// by sorting (address, index) pairs packed in one integer: n log n whatever the addresses
    /// are, where a hash table of hundreds of thousands of them cost more than the rest of the
    /// address checks together.
    static func earlierDuplicates(_ addresses: [IPv4Address]) -> [Int] {
        var keys = addresses.enumerated().map { UInt64($1.value) << 32 | UInt64($0) }
        keys.sort()
        var first = [Int](repeating: -1, count: addresses.count)
        var runStart = 0
        for k in keys.indices.dropFirst() {
            if keys[k] >> 32 == keys[runStart] >> 32 {
                first[Int(keys[k] & 0xFFFF_FFFF)] = Int(keys[runStart] & 0xFFFF_FFFF)
            } else {
                runStart = k
            }
        }
        return first
    }

    private func backendAddresses(of vpcID: String) -> Set<IPv4Address> {
        Set(resolved.loadBalancers.filter { $0.vpc == vpcID }.flatMap { $0.listeners.flatMap { $0.backends.map(\.address) } })
    }

    /// `owned`: `ownedAddressesByVPC()`.
    private mutating func checkAddressOwnership(_ owned: [[(address: IPv4Address, owner: AddressOwner)]]) {
        for (v, vpc) in resolved.vpcs.enumerated() {
            let backends = backendAddresses(of: vpc.id)
            let first = Self.earlierDuplicates(owned[v].map(\.address))
            for (i, (address, owner)) in owned[v].enumerated() {
                if first[i] >= 0 {
                    report(owner.path, "\(address) is already taken in VPC \(vpc.id) by \(owned[v][first[i]].owner.path)", hint: "each address is used once within a VPC")
                }
                if !backends.isEmpty && backends.contains(address) {
                    report(owner.path, "\(address) is a backend server's address in VPC \(vpc.id)", hint: "choose an address no server uses")
                }
            }
        }
    }

    /// Gives each ENI without an address the lowest free host address of its vSwitch after
    /// the first three, never the broadcast address; in file order, so it is deterministic.
    private mutating func allocateENIAddresses() {
        // The addresses taken in each VPC, worked out once and kept up to date, and where the
        // search for a free one resumes in each vSwitch (everything below it is taken): linear
        // in the number of ENIs, so a catalog of 10,000 endpoints is allocated in milliseconds.
        var taken: [String: Set<IPv4Address>] = [:]
        var resume: [String: UInt64] = [:]
        for e in resolved.endpoints.indices {
            for z in resolved.endpoints[e].enis.indices where resolved.endpoints[e].enis[z].address == nil {
                let endpoint = resolved.endpoints[e]
                let eni = endpoint.enis[z]
                guard let vswitch = resolved.vpcs.first(where: { $0.id == endpoint.vpc })?.vswitches.first(where: { $0.id == eni.vswitch }) else { continue }
                if taken[endpoint.vpc] == nil {
                    taken[endpoint.vpc] = Set(ownedAddresses(of: endpoint.vpc).map(\.address)).union(backendAddresses(of: endpoint.vpc))
                }
                let low = UInt64(vswitch.cidr.network.value) + UInt64(Self.reservedLowAddresses)
                let high = UInt64(vswitch.cidr.last.value)  // exclusive: the broadcast address
                var candidate = max(low, resume[vswitch.id] ?? low)
                while candidate < high, taken[endpoint.vpc]!.contains(IPv4Address(UInt32(candidate))) { candidate += 1 }
                if candidate < high {
                    resolved.endpoints[e].enis[z].address = IPv4Address(UInt32(candidate))
                    taken[endpoint.vpc]!.insert(IPv4Address(UInt32(candidate)))
                    resume[vswitch.id] = candidate + 1
                } else {
                    report("endpoints[\(e)].zones[\(z)]", "vSwitch \(vswitch.id) (\(vswitch.cidr)) has no free address to allocate", hint: "give an address, or use a larger vSwitch")
                }
            }
        }
    }

    /// VPCs without a namespace share the host's addresses, so their listeners must differ.
    /// `owned`: `ownedAddressesByVPC()`.
    private mutating func checkHostNamespaceAddresses(_ owned: [[(address: IPv4Address, owner: AddressOwner)]]) {
        var shared: [(address: IPv4Address, owner: AddressOwner, vpc: Int)] = []
        for (v, vpc) in resolved.vpcs.enumerated() where vpc.netns == nil {
            shared += owned[v].map { ($0.address, $0.owner, v) }
        }
        let first = Self.earlierDuplicates(shared.map(\.address))
        for (i, (address, owner, v)) in shared.enumerated() where first[i] >= 0 && shared[first[i]].vpc != v {
            let previous = shared[first[i]]
            report(owner.path, "\(address) is also used by \(previous.owner.path) (VPC \(resolved.vpcs[previous.vpc].id)); both VPCs have no netns and share the host's addresses", hint: "use another address, or give one of the VPCs a netns")
        }
        // A VPC's DNS listener in the host's namespace is dnsAddress:53; dns.listen must not take it.
        for (i, listener) in resolved.dns.listen.enumerated() where listener.address.port == 53 {
            for (v, vpc) in resolved.vpcs.enumerated() where vpc.netns == nil && vpc.dnsAddress == listener.address.address {
                report("dns.listen[\(i)].address", "\(listener.address) is also vpcs[\(v)].dnsAddress in the host's namespace", hint: "use another address or port")
            }
        }
    }

    // MARK: Helpers

    /// Reports every value after the first of its kind; returns each value's first index.
    @discardableResult
    private mutating func checkUnique(_ values: [String], path: (Int) -> String, what: String, ignoringEmpty: Bool = false) -> [String: Int] {
        var seen: [String: Int] = [:]
        seen.reserveCapacity(values.count)
        for (i, value) in values.enumerated() where !(ignoringEmpty && value.isEmpty) {
            if let first = seen[value] {
                report(path(i), "\(what) '\(value)' is declared twice", hint: "IDs are unique; the first is at \(path(first))")
            } else {
                seen[value] = i
            }
        }
        return seen
    }

    /// The key path of the n-th vSwitch when all VPCs' vSwitches are counted in order.
    private var vswitchPath: (Int) -> String {
        let flat = resolved.vpcs.enumerated().flatMap { v, vpc in vpc.vswitches.indices.map { (v, $0) } }
        return { "vpcs[\(flat[$0].0)].vswitches[\(flat[$0].1)].id" }
    }

    private func hintList(_ choices: [String], _ what: String) -> String {
        choices.isEmpty ? "declare the \(what) first" : "one of: \(choices.joined(separator: ", "))"
    }
}

/// A DNS label of letters, digits and hyphens (RFC 1123), 1 to 63 characters, hyphen not at an end.
func isLabel(_ text: String) -> Bool { isLabel(joining: text.utf8) }

/// True when the concatenation of `parts` is a label (1 to 63 letters, digits and hyphens, no
/// hyphen first or last), judged without building it: an ENI's zonal label is checked this way
/// once per ENI.
func isLabel(joining parts: String.UTF8View...) -> Bool {
    let count = parts.reduce(0) { $0 + $1.count }
    guard (1...63).contains(count),
          parts.first(where: { !$0.isEmpty })?.first != UInt8(ascii: "-"),
          parts.last(where: { !$0.isEmpty })?.last != UInt8(ascii: "-")
    else { return false }
    return parts.allSatisfy { $0.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) } }
}

/// True when `endpoint-zone` (an ENI's zonal label) is a label, judged without building it or
/// a list of its parts: once per ENI, 300,000 times at 100,000 endpoints in three zones.
func isLabel(_ endpoint: String, joinedTo zone: String) -> Bool {
    let count = endpoint.utf8.count + 1 + zone.utf8.count
    guard count <= 63, let first = endpoint.utf8.first, first != UInt8(ascii: "-"), (zone.utf8.last ?? UInt8(ascii: "-")) != UInt8(ascii: "-") else {
        return false
    }
    func isLabelByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "-") || (byte >= 48 && byte <= 57) || (byte | 0x20 >= 97 && byte | 0x20 <= 122)
    }
    return endpoint.utf8.allSatisfy(isLabelByte) && zone.utf8.allSatisfy(isLabelByte)
}

func isDomainName(_ text: String) -> Bool {
    text.utf8.count <= 240 && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0)) }
}

/// True when one domain equals the other or lies inside it (both lower case, no trailing dot).
func domainsOverlap(_ a: String, _ b: String) -> Bool {
    a == b || a.hasSuffix("." + b) || b.hasSuffix("." + a)
}

func isAccountID(_ text: String) -> Bool {
    text.utf8.count == 16 && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
}

func isInterfaceName(_ text: String) -> Bool {
    (1...15).contains(text.utf8.count) && text.utf8.allSatisfy {
        ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 45 || $0 == 95 || $0 == 46
    }
}
