import ZoneLinkCore

/// What the gateway must have running for one catalog: every ENI listener, the provider side
/// of every load balancer listener, and the addresses each namespace needs (ENIs, VPC DNS, NAT). Pure: derived from the catalog alone, so
/// a new catalog's plan can be compared with the running one.
public struct GatewayPlan: Sendable, Equatable {
    /// One port of one ENI: where a consumer connects, and where its flows go.
    public struct ENIListener: Sendable, Hashable {
        public var proto: TransportProtocol
        public var vpc: String
        public var netns: String?
        public var address: IPv4Endpoint
        public var endpoint: String
        public var zone: String
        public var loadBalancer: String
        /// Index of the load balancer listener this port belongs to.
        public var listener: Int
        /// The endpoint's security groups, resolved: admission reads them per flow.
        public var securityGroups: [SecurityGroup]
        public var connection: ConnectionState
        /// What a PROXY v2 header tells the target about this port's flows, when the service
        /// sets `proxyProtocol: v2`; nil: no header, the target sees the client's bytes only.
        public var proxyIdentity: ProxyIdentity?
        /// The service's `connectionBandwidth` (Mbit/s): what all TCP flows of this port's
        /// endpoint, over all its ports and zones, may move in each direction; nil: no cap.
        public var connectionBandwidth: Int?
        /// The consumer account owning the endpoint: named in the attribution log.
        public var account: String = ""
        /// Its balancer's backup zone while the balancer serves from there (`BalancerFailover`);
        /// nil: the ENI lives in its own `zone`.
        public var servingZone: String? = nil

        /// Whether another host may still listen on this port for a moment when this host
        /// opens it: the port of a balancer with a backup zone, when zones are placed on hosts
        /// (`host.zones`). The host of the balancer's other zone (the backup host while the
        /// balancer was away, or the home host until it applies a shift) lets go at its next
        /// heartbeat or change, so the gateway serves the plan without the port and binds it
        /// as soon as it is free, instead of refusing the plan.
        public var handover: Bool = false

        /// The zone this ENI lives in now; a shift's drain follows it.
        public var livesIn: String { servingZone ?? zone }

        /// The ENI this port listens on.
        public var eni: ENIID { ENIID(endpoint: endpoint, zone: zone) }
    }

    /// The provider side of one load balancer listener: where flows leave from and go to.
    public struct Upstream: Sendable, Hashable {
        public var loadBalancer: String
        public var listener: Int
        public var providerVPC: String
        public var providerNetns: String?
        public var natAddresses: [IPv4Address]
        /// The external load balancer's address, or nil for built-in scheduling over `backends`.
        public var external: IPv4Endpoint?
        public var backends: [Backend]
        /// Each backend's zone (its vSwitch's in the provider VPC; nil when none holds it).
        public var backendZones: [String?]
        /// The external load balancer's zone (`Catalog.externalZone(of:)`).
        public var externalZone: String?
        public var backendPort: UInt16
        public var scheduler: Scheduler
        public var healthCheck: HealthCheck
        /// Whether a service that sets `proxyProtocol: v2` sends its flows here: then every
        /// health check starts with a LOCAL header, so that a backend that requires the
        /// header takes the check as a normal connection instead of logging a bad one.
        public var proxyProtocol: Bool
        /// Whether kernel services send their flows here (`dataPlane: kernel`): then the NAT
        /// addresses are routed to ZoneLink's gateway namespace instead of being local in the
        /// provider's (the validator keeps a load balancer to one data plane).
        public var kernel: Bool = false
    }

    /// An ENI address of a kernel service's endpoint, Connected or not: routed from its
    /// consumer VPC's namespace to the gateway namespace, where the kernel NAT serves it (or,
    /// when nothing admits the flow there, refuses it).
    public struct KernelENI: Sendable, Hashable {
        public var vpc: String
        public var netns: String
        public var address: IPv4Address
    }

    /// Addresses ZoneLink binds inside one namespace (nil: the host's), to be added as /32 to
    /// `interface` when missing.
    public struct NamespaceAddresses: Sendable, Hashable {
        public var netns: String?
        public var interface: String
        public var addresses: [IPv4Address]
        /// Those of `addresses` another host wants in this namespace too (the ENI addresses in
        /// front of a balancer with a backup zone, held by the hosts of both its zones): the
        /// one that finds it present takes it as its own as well, and neither removes it when
        /// it stops, which would cut the other host's listener off (`InterfaceAddresses`).
        public var shared: Set<IPv4Address> = []
    }

    /// The ports the relay listens on: services with `dataPlane: relay`.
    public var eniListeners: [ENIListener]
    /// The ports the kernel NAT serves (`dataPlane: kernel`): nothing listens on them, the
    /// gateway namespace's nftables table rewrites their packets (`KernelNATRuleset`).
    public var kernelPorts: [ENIListener]
    /// Every ENI address of a kernel service's endpoints.
    public var kernelENIs: [KernelENI]
    /// The namespace ZoneLink creates for the kernel path (`gateway.kernelNamespace`).
    public var kernelNamespace: String
    public var upstreams: [Upstream]
    public var namespaces: [NamespaceAddresses]
    /// The zones shifted away: their backends get no new flow, and past a shift's `drainAt`
    /// the flows through their ENIs or to their backends are closed.
    public var zonalShifts: [ZonalShift]
    /// The load balancers serving from their backup zone (`Catalog.balancerFailover`).
    public var failover: BalancerFailover
    /// The ENIs this host opens and judges the health of (`Catalog.carriedENIs(_:)`).
    public var carriedENIs: [ENIID]
    /// The load balancer listeners behind the carried ENIs' open ports: what zone health is
    /// worked out from (`ZoneHealthTracker`). Gathered while the plan is built (beside the DNS
    /// engine) so that applying a plan costs the gateway no pass of its own over every ENI.
    public var health: HealthIndex
    /// The ports of ENIs this host opens only while their balancer serves from its backup zone
    /// (a zone it carries), not open now: no new flow comes through them here, and the flows
    /// that came through them while they were open continue until they end.
    public var standbyPorts: [ENIListener]

    /// Which carried ENIs each load balancer listener serves.
    public struct HealthIndex: Sendable, Equatable {
        public struct Listener: Sendable, Hashable {
            public var loadBalancer: String
            public var listener: Int
        }

        /// The load balancer listeners behind some carried ENI's open port, each once.
        public var listeners: [Listener] = []
        /// For each of `listeners`, the positions in `carriedENIs` of the ENIs it serves.
        public var enis: [[Int]] = []
        private var slots: [Listener: Int] = [:]

        mutating func add(eni position: Int, servedBy loadBalancer: String, listener: Int) {
            let key = Listener(loadBalancer: loadBalancer, listener: listener)
            let slot = slots[key] ?? {
                slots[key] = listeners.count
                listeners.append(key)
                enis.append([])
                return listeners.count - 1
            }()
            if enis[slot].last != position { enis[slot].append(position) }
        }
    }

    /// - Parameter failover: the balancers serving from their backup zone now; their services'
    ///   ENIs of the balancer's own zone are opened by the host of the backup zone, and their
    ///   flows leave from the NAT addresses there (`Catalog.natAddresses(of:failover:)`).
    ///   Nil: as the catalog's shifts alone decide (`Catalog.failoverByShifts`).
    public init(catalog: Catalog, failover: BalancerFailover? = nil) {
        let failover = failover ?? catalog.failoverByShifts
        var listeners: [ENIListener] = []
        var standbyPorts: [ENIListener] = []
        var kernelPorts: [ENIListener] = []
        var kernelENIs: [KernelENI] = []
        var upstreams: [Upstream] = []
        // Per namespace, its addresses in first-wanted order and as a set: one lookup per
        // address, and the entry changed in place (a copy taken out and put back would copy
        // the list each time: quadratic in a VPC's ENIs, minutes at 100,000 endpoints).
        var wanted: [String?: (interface: String, addresses: [IPv4Address], seen: Set<IPv4Address>, shared: Set<IPv4Address>)] = [:]
        func want(_ address: IPv4Address, in vpc: VPC, shared: Bool = false) {
            if wanted[vpc.netns, default: (vpc.interface ?? "lo", [], [], [])].seen.insert(address).inserted {
                wanted[vpc.netns]!.addresses.append(address)
            }
            if shared { wanted[vpc.netns]!.shared.insert(address) }
        }

        // Load balancers a service with `proxyProtocol: v2` sends flows to.
        let proxied = Set(catalog.services.filter(\.proxyProtocol).flatMap { $0.resources.map(\.loadBalancer) })
        // Load balancers kernel services send flows to.
        let kernelBalancers = Set(catalog.services.filter { $0.dataPlane == .kernel }.flatMap { $0.resources.map(\.loadBalancer) })
        for balancer in catalog.loadBalancers {
            guard let vpc = catalog.vpc(balancer.vpc) else { continue }
            for (index, listener) in balancer.listeners.enumerated() {
                upstreams.append(Upstream(
                    loadBalancer: balancer.id, listener: index, providerVPC: vpc.id, providerNetns: vpc.netns,
                    natAddresses: catalog.natAddresses(of: balancer, failover: failover),
                    external: balancer.address.map { IPv4Endpoint(address: $0, port: listener.backendPort) },
                    backends: listener.backends,
                    backendZones: listener.backends.map { catalog.zone(of: $0.address, inVPC: vpc.id) },
                    externalZone: catalog.externalZone(of: balancer),
                    backendPort: listener.backendPort, scheduler: listener.scheduler,
                    healthCheck: listener.healthCheck, proxyProtocol: proxied.contains(balancer.id),
                    kernel: kernelBalancers.contains(balancer.id)))
            }
            if !kernelBalancers.contains(balancer.id) && catalog.carries(vpc: vpc.id) {
                // Only the host of the balancer's zone opens ENIs in front of it, so it alone
                // holds its NAT addresses: a second host holding one too would take it away from
                // under the first when it stops. With a backup zone, each zone's host holds that
                // zone's NAT addresses only, and keeps them when the balancer moves away, for
                // the flows still open.
                for address in balancer.natAddresses {
                    guard let backup = balancer.backupZone else {
                        if catalog.carries(zone: balancer.zone, vpc: vpc.id) { want(address, in: vpc) }
                        continue
                    }
                    let zone = catalog.zone(of: address, inVPC: vpc.id) == backup ? backup : balancer.zone
                    if catalog.carries(zone: zone, vpc: vpc.id) { want(address, in: vpc) }
                }
            }
        }
        // `Catalog.carriedENIs(_:)`, in its order, found in the same pass.
        var carried: [ENIID] = []
        var health = HealthIndex()
        for endpoint in catalog.endpoints {
            // Another host opens the ENIs of zones (or VPCs) this one does not carry (`host`);
            // an ENI whose balancer serves from its backup zone is opened by that zone's host.
            // Each ENI's serving zone, and its position in `carried` when this host carries it.
            let placed = endpoint.enis.map { eni -> (servingZone: String, carriedAt: Int?) in
                let id = endpoint.id(of: eni)
                let zone = catalog.servingZone(of: id, endpoint: endpoint, failover: failover)
                guard catalog.carries(zone: zone, vpc: endpoint.vpc) else { return (zone, nil) }
                carried.append(id)
                return (zone, carried.count - 1)
            }
            guard let vpc = catalog.vpc(endpoint.vpc), let service = catalog.service(endpoint.service) else { continue }
            for (eni, (servingZone, carriedAt)) in zip(endpoint.enis, placed) {
                guard let address = eni.address,
                      let resource = service.resources.first(where: { $0.zone == eni.zone }),
                      let balancer = catalog.loadBalancer(resource.loadBalancer)
                else { continue }
                let open = catalog.carries(zone: servingZone, vpc: vpc.id)
                // A balancer with a backup zone has its ENIs held by the hosts of both zones:
                // the one whose zone it serves from listens; the other keeps the address (the
                // flows opened through it while the balancer was there continue), nothing
                // listens. Both keep it, so that neither takes it from under the other.
                let holders = balancer.backupZone.map { [balancer.zone, $0] } ?? []
                let standby = !open && holders.contains { catalog.carries(zone: $0, vpc: vpc.id) }
                let shared = !holders.isEmpty && catalog.host?.zones != nil
                guard open || standby else { continue }
                // Every ENI address exists, so that a consumer of an endpoint that is not
                // Connected gets a reset (nothing listens) rather than silence. A kernel ENI is
                // routed to the gateway namespace instead, which refuses what it does not serve.
                let kernel = service.dataPlane == .kernel
                if kernel, let netns = vpc.netns {
                    kernelENIs.append(KernelENI(vpc: vpc.id, netns: netns, address: address))
                } else {
                    want(address, in: vpc, shared: shared)
                }
                guard catalog.connection(of: endpoint) == .connected else { continue }
                for (index, listener) in balancer.listeners.enumerated() {
                    let port = ENIListener(
                        proto: listener.protocol, vpc: vpc.id, netns: vpc.netns,
                        address: IPv4Endpoint(address: address, port: listener.port), endpoint: endpoint.id,
                        zone: eni.zone, loadBalancer: balancer.id, listener: index,
                        securityGroups: endpoint.securityGroups.compactMap { id in vpc.securityGroups.first { $0.id == id } },
                        connection: .connected,
                        proxyIdentity: service.proxyProtocol
                            ? ProxyIdentity(endpoint: endpoint.id, consumerVPC: vpc.id, consumerAccount: endpoint.account, zone: eni.zone)
                            : nil,
                        connectionBandwidth: service.connectionBandwidth, account: endpoint.account,
                        servingZone: servingZone == eni.zone ? nil : servingZone,
                        handover: shared)
                    if standby {
                        standbyPorts.append(port)
                        continue
                    }
                    if kernel { kernelPorts.append(port) } else { listeners.append(port) }
                    // Open, so carried: the same rule decides both. (A kernel port is served
                    // once its table is in place: the gateway's apply fails otherwise.)
                    if let carriedAt { health.add(eni: carriedAt, servedBy: balancer.id, listener: index) }
                }
            }
        }
        for vpc in catalog.vpcs where catalog.carries(vpc: vpc.id) {
            if let address = vpc.dnsAddress { want(address, in: vpc) }
        }
        self.eniListeners = listeners
        self.kernelPorts = kernelPorts
        self.kernelENIs = kernelENIs
        self.kernelNamespace = catalog.gateway.kernelNamespace
        self.upstreams = upstreams
        self.zonalShifts = catalog.zonalShifts
        self.failover = failover
        self.carriedENIs = carried
        self.health = health
        self.standbyPorts = standbyPorts
        self.namespaces = wanted.map {
            NamespaceAddresses(netns: $0.key, interface: $0.value.interface, addresses: $0.value.addresses, shared: $0.value.shared)
        }
            .sorted { ($0.netns ?? "") < ($1.netns ?? "") }
    }
}
