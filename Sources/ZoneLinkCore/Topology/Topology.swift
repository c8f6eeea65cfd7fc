/// The topology and the PrivateLink objects of one configuration, as plain values.
///
/// These are what the config file says, after parsing; references between them are by ID.
/// `Catalog` is the validated whole, with every reference known to resolve.

/// A tenant. `id` is the cloud's 16-digit account ID (whitelists hold these); `name` is
/// what other objects use to refer to it in a config.
public struct Account: Hashable, Sendable {
    public var id: String
    public var name: String

    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}

/// A subnet of a VPC in one zone.
public struct VSwitch: Hashable, Sendable {
    public var id: String
    public var zone: String
    public var cidr: IPv4Prefix

    public init(id: String, zone: String, cidr: IPv4Prefix) {
        self.id = id
        self.zone = zone
        self.cidr = cidr
    }
}

public enum TransportProtocol: String, Hashable, Sendable, CaseIterable {
    case tcp, udp
}

/// One ingress rule of a security group. `protocol == nil` means every protocol.
public struct IngressRule: Hashable, Sendable {
    public var `protocol`: TransportProtocol?
    public var ports: ClosedRange<UInt16>
    public var source: IPv4Prefix

    public init(protocol: TransportProtocol?, ports: ClosedRange<UInt16>, source: IPv4Prefix) {
        self.protocol = `protocol`
        self.ports = ports
        self.source = source
    }

    public func allows(_ proto: TransportProtocol, port: UInt16, from address: IPv4Address) -> Bool {
        (self.protocol == nil || self.protocol == proto) && ports.contains(port) && source.contains(address)
    }
}

/// Ingress rules applied to an endpoint's ENIs. Allow rules only; what no rule allows is denied.
public struct SecurityGroup: Hashable, Sendable {
    public var id: String
    public var ingress: [IngressRule]

    public init(id: String, ingress: [IngressRule]) {
        self.id = id
        self.ingress = ingress
    }
}

/// An isolated address space of one account, optionally hosted in a Linux network namespace.
public struct VPC: Hashable, Sendable {
    public var id: String
    /// The owning account's ID (resolved from a name or ID in the file).
    public var account: String
    public var cidr: IPv4Prefix
    public var netns: String?
    public var interface: String?
    public var dnsAddress: IPv4Address?
    public var vswitches: [VSwitch]
    public var securityGroups: [SecurityGroup]

    public init(
        id: String, account: String, cidr: IPv4Prefix, netns: String? = nil, interface: String? = nil,
        dnsAddress: IPv4Address? = nil, vswitches: [VSwitch] = [], securityGroups: [SecurityGroup] = []
    ) {
        self.id = id
        self.account = account
        self.cidr = cidr
        self.netns = netns
        self.interface = interface
        self.dnsAddress = dnsAddress
        self.vswitches = vswitches
        self.securityGroups = securityGroups
    }

    /// The vSwitch whose block holds `address`, if any: this is how a client's zone is found.
    public func vswitch(holding address: IPv4Address) -> VSwitch? {
        vswitches.first { $0.cidr.contains(address) }
    }
}

public enum Scheduler: String, Hashable, Sendable {
    /// Smooth weighted round robin.
    case wrr
    /// Weighted least connections.
    case wlc
}

public struct Backend: Hashable, Sendable {
    public var address: IPv4Address
    public var weight: Int

    public init(address: IPv4Address, weight: Int = 100) {
        self.address = address
        self.weight = weight
    }
}

public struct HealthCheck: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case tcp
        case http(path: String, expectStatus: Int)
    }

    public var kind: Kind
    public var interval: Duration
    public var timeout: Duration
    public var healthyThreshold: Int
    public var unhealthyThreshold: Int

    public init(
        kind: Kind = .tcp, interval: Duration = .seconds(2), timeout: Duration = .seconds(5),
        healthyThreshold: Int = 3, unhealthyThreshold: Int = 3
    ) {
        self.kind = kind
        self.interval = interval
        self.timeout = timeout
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
    }
}

public struct LoadBalancerListener: Hashable, Sendable {
    public var `protocol`: TransportProtocol
    public var port: UInt16
    public var backendPort: UInt16
    public var scheduler: Scheduler
    public var backends: [Backend]
    public var healthCheck: HealthCheck

    public init(
        protocol: TransportProtocol, port: UInt16, backendPort: UInt16? = nil, scheduler: Scheduler = .wrr,
        backends: [Backend] = [], healthCheck: HealthCheck = HealthCheck()
    ) {
        self.protocol = `protocol`
        self.port = port
        self.backendPort = backendPort ?? port
        self.scheduler = scheduler
        self.backends = backends
        self.healthCheck = healthCheck
    }
}

/// A provider's L4 load balancer in one zone: built in (listeners with backends) or external
/// (`address` set, no backends: flows go to that address).
public struct LoadBalancer: Hashable, Sendable {
    public var id: String
    public var account: String
    public var vpc: String
    public var zone: String
    /// The zone that takes the load balancer's flows while `zone` is unavailable (shifted
    /// away, or no live host carries it; `Catalog.balancerZones`); nil: none, the balancer's
    /// flows stop with its zone.
    public var backupZone: String?
    public var natAddresses: [IPv4Address]
    public var address: IPv4Address?
    public var listeners: [LoadBalancerListener]

    public init(
        id: String, account: String, vpc: String, zone: String, backupZone: String? = nil, natAddresses: [IPv4Address] = [],
        address: IPv4Address? = nil, listeners: [LoadBalancerListener] = []
    ) {
        self.id = id
        self.account = account
        self.vpc = vpc
        self.zone = zone
        self.backupZone = backupZone
        self.natAddresses = natAddresses
        self.address = address
        self.listeners = listeners
    }

    public var isExternal: Bool { address != nil }
}

/// The load balancer that serves an endpoint service in one zone.
public struct ServiceResource: Hashable, Sendable {
    public var zone: String
    public var loadBalancer: String

    public init(zone: String, loadBalancer: String) {
        self.zone = zone
        self.loadBalancer = loadBalancer
    }
}

/// What carries a service's flows from the ENIs to its targets (`endpointServices[].dataPlane`).
public enum ServiceDataPlane: String, Hashable, Sendable, Codable, CaseIterable {
    /// ZoneLink's user-space relay: two sockets per flow. The default; the only one that can
    /// write a PROXY protocol header or cap an endpoint connection's bandwidth, since both
    /// need the flow's bytes in hand.
    case relay
    /// The kernel's NAT (nftables DNAT and SNAT in ZoneLink's gateway namespace): packets are
    /// rewritten, never read by ZoneLink (`docs/gateway.md`, "Kernel data plane").
    case kernel
}

/// What a provider offers to other accounts' VPCs.
public struct EndpointService: Hashable, Sendable {
    public var id: String
    public var account: String
    public var resources: [ServiceResource]
    public var autoAcceptConnections: Bool
    public var zoneAffinity: Bool
    /// Account IDs allowed to create endpoints of this service (the owner always may).
    public var whitelist: [String]
    public var privateDomain: String?
    public var proxyProtocol: Bool
    /// The cap, in Mbit/s, on what all TCP flows of one endpoint connection (one endpoint of
    /// this service) move in each direction; nil: no cap.
    public var connectionBandwidth: Int?
    /// What carries the flows of this service (default `relay`).
    public var dataPlane: ServiceDataPlane

    /// The caps accepted, in Mbit/s, from the file and the API alike. A cap of 0 would stop
    /// every flow without resetting it; above 100 Gbit/s is more than a relay worker moves, so
    /// no cap at all.
    public static let connectionBandwidthLimits = 1...100_000

    public init(
        id: String, account: String, resources: [ServiceResource], autoAcceptConnections: Bool = false,
        zoneAffinity: Bool = false, whitelist: [String] = [], privateDomain: String? = nil,
        proxyProtocol: Bool = false, connectionBandwidth: Int? = nil, dataPlane: ServiceDataPlane = .relay
    ) {
        self.id = id
        self.account = account
        self.resources = resources
        self.autoAcceptConnections = autoAcceptConnections
        self.zoneAffinity = zoneAffinity
        self.whitelist = whitelist
        self.privateDomain = privateDomain
        self.proxyProtocol = proxyProtocol
        self.connectionBandwidth = connectionBandwidth
        self.dataPlane = dataPlane
    }

    public var zones: [String] { resources.map(\.zone) }

    public func allows(account accountID: String) -> Bool {
        accountID == account || whitelist.contains(accountID)
    }
}

/// The state of an endpoint's connection to its service, in the console's words.
public enum ConnectionState: String, Hashable, Sendable, CaseIterable {
    case disconnected = "Disconnected"
    case connected = "Connected"
    case rejected = "Rejected"
}

/// An endpoint's network interface in one zone: where ZoneLink listens for the consumer.
public struct ENI: Hashable, Sendable {
    public var zone: String
    public var vswitch: String
    /// Nil only before allocation; every ENI in a `Catalog` has an address.
    public var address: IPv4Address?

    public init(zone: String, vswitch: String, address: IPv4Address? = nil) {
        self.zone = zone
        self.vswitch = vswitch
        self.address = address
    }
}

/// A consumer's attachment to a service in one of its VPCs.
public struct Endpoint: Hashable, Sendable {
    public var id: String
    public var account: String
    public var service: String
    public var vpc: String
    public var securityGroups: [String]
    public var enis: [ENI]
    /// The state declared in the file; nil means "as the service's auto-accept says".
    public var connection: ConnectionState?

    public init(
        id: String, account: String, service: String, vpc: String, securityGroups: [String] = [],
        enis: [ENI], connection: ConnectionState? = nil
    ) {
        self.id = id
        self.account = account
        self.service = service
        self.vpc = vpc
        self.securityGroups = securityGroups
        self.enis = enis
        self.connection = connection
    }
}

/// A DNS listener outside any VPC namespace (`dns.listen`).
public struct DNSListener: Hashable, Sendable {
    public var address: IPv4Endpoint
    /// Answer as a client of this VPC (nil: as a client of no VPC).
    public var vpc: String?
    /// Answer as a client in this zone (nil: the zone of the vSwitch holding the source address).
    public var zone: String?
    /// Whether `dns.rateLimit` applies to this listener's UDP answers (`rateLimit: false` turns
    /// it off, say for a listener only a trusted load generator uses).
    public var rateLimit: Bool

    public init(address: IPv4Endpoint, vpc: String? = nil, zone: String? = nil, rateLimit: Bool = true) {
        self.address = address
        self.vpc = vpc
        self.zone = zone
        self.rateLimit = rateLimit
    }
}

/// What one client may hold of the DNS server (`dns.limits`), so that a hostile one cannot
/// exhaust memory, descriptors or the forwarder for the others. Defaults follow NSD and Knot
/// in spirit, sized for stub resolvers inside VPCs.
public struct DNSLimits: Hashable, Sendable {
    /// TCP connections open at once over every DNS listener; one more is closed at once.
    public var tcpConnections: Int = 1000
    /// TCP connections open at once from one source address.
    public var tcpConnectionsPerSource: Int = 100
    /// Answers of one TCP connection waiting to be written; at this many the connection is not
    /// read until the client takes some (a client that never reads holds at most this many).
    public var tcpQueuedAnswers: Int = 16
    /// A TCP message must arrive in full within this of its first byte.
    public var tcpMessageTimeout: Duration = .seconds(2)
    /// Questions being resolved upstream at once, over all clients.
    public var forwardInFlight: Int = 500
    /// Questions one source address may have being resolved upstream at once.
    public var forwardInFlightPerClient: Int = 50

    public init() {}
}

/// Response-rate limiting of UDP answers (`dns.rateLimit`), as NSD and Knot do it: answers of
/// one class (name and type, NXDOMAIN of a zone, errors) to one source prefix beyond
/// `responsesPerSecond` are dropped, except every `slip`-th, sent truncated (TC=1) so that a
/// real client retries over TCP, which a spoofed source cannot.
public struct DNSRateLimit: Hashable, Sendable {
    /// Answers per second per source prefix and class (0: no limit).
    public var responsesPerSecond: Int = 1000
    /// Every this-many limited answer goes out truncated instead of being dropped (0: never).
    public var slip: Int = 2
    /// Sources in one prefix of this length share their limits.
    public var ipv4PrefixLength: Int = 24

    public init(responsesPerSecond: Int = 1000, slip: Int = 2, ipv4PrefixLength: Int = 24) {
        self.responsesPerSecond = responsesPerSecond
        self.slip = slip
        self.ipv4PrefixLength = ipv4PrefixLength
    }
}

public struct DNSSettings: Hashable, Sendable {
    /// TTL of generated records, and the SOA minimum of the generated zone.
    public var ttl: UInt32
    public var listen: [DNSListener]
    public var upstreams: [IPv4Endpoint]
    /// Static zones, RFC 1035 master files, as written in the config (relative to the
    /// server's working directory).
    public var zoneFiles: [String]
    /// How long an idle DNS-over-TCP connection is kept (RFC 7766 section 6.2.3).
    public var tcpIdleTimeout: Duration
    /// Resolvers whose EDNS Client Subnet option is believed (RFC 7871): it names the client's zone.
    public var trustedForwarders: [IPv4Prefix]
    /// Forwarding: the bound within which a client gets an answer or SERVFAIL.
    public var forwardTimeout: Duration = .seconds(2)
    /// Forwarding: the longest a forwarded answer is cached, whatever its TTL says.
    public var cacheMaxTTL: Duration = .seconds(3600)
    /// Forwarding: how many answers the cache holds.
    public var cacheSize: Int = 10_000
    /// Where providers may put a service's `privateDomain`: each one must equal or lie under
    /// one of these (lower case, no trailing dot). Empty: no service may have one.
    public var privateDomainSuffixes: [String] = []
    /// What one client may hold: TCP connections, queued answers, forwarded questions.
    public var limits = DNSLimits()
    /// Response-rate limiting of UDP answers.
    public var rateLimit = DNSRateLimit()
    /// Secondaries that carry views by zone transfer (`docs/dns.md`, "Zone transfers").
    public var secondaries: [DNSSecondary] = []

    public init(
        ttl: UInt32 = 60, listen: [DNSListener] = [], upstreams: [IPv4Endpoint] = [], zoneFiles: [String] = [],
        tcpIdleTimeout: Duration = .seconds(10), trustedForwarders: [IPv4Prefix] = []
    ) {
        self.trustedForwarders = trustedForwarders
        self.ttl = ttl
        self.listen = listen
        self.upstreams = upstreams
        self.zoneFiles = zoneFiles
        self.tcpIdleTimeout = tcpIdleTimeout
    }
}

/// Gateway settings (`gateway:`): how long idle flows live, the NAT ports flows may use, and
/// how many flows each party may hold.
public struct GatewaySettings: Hashable, Sendable {
    public var tcpIdleTimeout: Duration
    public var udpIdleTimeout: Duration
    /// Provider-side source ports, per NAT address and protocol.
    public var natPorts: ClosedRange<UInt16>
    /// How many flows the gateway, an endpoint and a client may hold (`gateway.limits`).
    public var limits: GatewayLimits
    /// Where flows' opens and closes are kept, and how much of them (`gateway.attribution`).
    public var attribution: AttributionSettings
    /// The network namespace ZoneLink creates for services with `dataPlane: kernel` (their
    /// nftables table and the veth pairs to the VPCs' namespaces live there), and removes on stop.
    public var kernelNamespace: String
    /// A relayed TCP flow is spliced into the kernel (its bytes no longer copied through user
    /// space) after this many request–answer exchanges; 0: never. See `RelaySplicing`.
    public var spliceAfterExchanges: Int

    public static let defaultKernelNamespace = "zonelink-gw"
    /// Off: splicing saves CPU per request on long-lived flows but halves a spliced flow's
    /// bulk throughput (`docs/gateway.md`, "Splicing"); an operator turns it on knowingly.
    public static let defaultSpliceAfterExchanges = 0

    public init(
        tcpIdleTimeout: Duration = .seconds(900), udpIdleTimeout: Duration = .seconds(60),
        natPorts: ClosedRange<UInt16> = 1024...65535, limits: GatewayLimits = GatewayLimits(),
        attribution: AttributionSettings = AttributionSettings(), kernelNamespace: String = Self.defaultKernelNamespace,
        spliceAfterExchanges: Int = Self.defaultSpliceAfterExchanges
    ) {
        self.tcpIdleTimeout = tcpIdleTimeout
        self.udpIdleTimeout = udpIdleTimeout
        self.natPorts = natPorts
        self.limits = limits
        self.attribution = attribution
        self.kernelNamespace = kernelNamespace
        self.spliceAfterExchanges = spliceAfterExchanges
    }
}
