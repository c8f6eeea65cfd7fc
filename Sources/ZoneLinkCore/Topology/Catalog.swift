/// A validated configuration: every reference resolves, every address is where it belongs,
/// every ENI has an address. Immutable; a change builds a new catalog and swaps it in.
///
/// References to accounts are normalised to account IDs, and names to lower case, so that
/// readers compare plain strings.
public struct Catalog: Sendable {
    public let region: String
    /// The suffix of every generated name, lower case, without a trailing dot.
    public let domain: String
    public let dns: DNSSettings
    public let gateway: GatewaySettings
    public let control: ControlSettings
    public let descriptors: DescriptorSettings
    public let accounts: [Account]
    public let vpcs: [VPC]
    public let loadBalancers: [LoadBalancer]
    public let services: [EndpointService]
    public let endpoints: [Endpoint]
    /// Zones shifted away now (`ZonalShift`), in the order they were started.
    public let zonalShifts: [ZonalShift]
    /// What this host carries when several share the catalog; nil: everything.
    public let host: HostPlacement?
    /// Increases with every catalog published by one process; the SOA serial of generated zones.
    public let serial: UInt32

    private let vpcIndex: [String: Int]
    private let serviceIndex: [String: Int]
    private let loadBalancerIndex: [String: Int]
    private let endpointIndex: [String: Int]

    public func vpc(_ id: String) -> VPC? { vpcIndex[id].map { vpcs[$0] } }
    public func service(_ id: String) -> EndpointService? { serviceIndex[id].map { services[$0] } }
    public func loadBalancer(_ id: String) -> LoadBalancer? { loadBalancerIndex[id].map { loadBalancers[$0] } }
    public func endpoint(_ id: String) -> Endpoint? { endpointIndex[id].map { endpoints[$0] } }
    public func contains(endpoint id: String) -> Bool { endpointIndex[id] != nil }

    /// The connection state of an endpoint: as declared, else as the service's auto-accept says.
    public func connection(of endpoint: Endpoint) -> ConnectionState {
        if let declared = endpoint.connection { return declared }
        return service(endpoint.service)?.autoAcceptConnections == true ? .connected : .disconnected
    }

    /// Validates `configuration` and allocates missing ENI addresses.
    /// Throws every issue found, with key paths into the file.
    public init(configuration: Configuration, file: String, serial: UInt32 = 1) throws(ConfigError) {
        var validator = CatalogValidator(configuration)
        validator.validate()
        guard validator.issues.isEmpty else { throw ConfigError(file: file, issues: validator.issues) }
        let resolved = validator.resolved
        self.region = resolved.region.lowercased()
        self.domain = resolved.domain.lowercased().trimmingTrailingDot
        self.dns = resolved.dns
        self.gateway = resolved.gateway
        self.control = resolved.control
        self.descriptors = resolved.descriptors
        self.accounts = resolved.accounts
        self.vpcs = resolved.vpcs
        self.loadBalancers = resolved.loadBalancers
        self.services = resolved.endpointServices
        self.endpoints = resolved.endpoints
        self.zonalShifts = resolved.zonalShifts
        self.host = resolved.host
        self.serial = serial
        self.vpcIndex = Dictionary(uniqueKeysWithValues: vpcs.enumerated().map { ($1.id, $0) })
        self.serviceIndex = Dictionary(uniqueKeysWithValues: services.enumerated().map { ($1.id, $0) })
        self.loadBalancerIndex = Dictionary(uniqueKeysWithValues: loadBalancers.enumerated().map { ($1.id, $0) })
        // Endpoint IDs are unique here (validated), and the validator has them indexed already.
        self.endpointIndex = validator.endpointIndex
    }

    /// Loads, parses and validates a config file.
    public static func load(file: String, serial: UInt32 = 1) throws(ConfigError) -> Catalog {
        try Catalog(configuration: Configuration.load(file: file), file: file, serial: serial)
    }
}

extension String {
    var trimmingTrailingDot: String { hasSuffix(".") ? String(dropLast()) : self }
}
