import ZoneLinkCore

/// Where an object was declared: in the config file (change it there and reload) or
/// through the API.
public enum Origin: String, Hashable, Sendable, Codable {
    case file, api
}

/// A service as one principal may see it. Consumers (whitelisted accounts) see what they need
/// to connect; `resources` and `whitelist` are the provider's and the operator's only.
public struct ServiceView: Hashable, Sendable, Codable {
    public var id: String
    /// The provider's account ID.
    public var account: String
    public var zones: [String]
    public var autoAcceptConnections: Bool
    public var zoneAffinity: Bool
    public var privateDomain: String?
    /// `epsrv-….<region>.<domain>`: answers in VPCs that have an endpoint of the service.
    public var dnsName: String
    public var origin: Origin
    /// Provider and operator only.
    public var resources: [ServiceResourceSpec]?
    /// Provider and operator only.
    public var whitelist: [WhitelistEntry]?
    /// Provider and operator only.
    public var proxyProtocol: Bool?
    /// Mbit/s per endpoint connection and direction (provider and operator only; absent: no cap).
    public var connectionBandwidth: Int?
    /// What carries the flows (provider and operator only).
    public var dataPlane: ServiceDataPlane?

    public init(
        id: String, account: String, zones: [String], autoAcceptConnections: Bool, zoneAffinity: Bool,
        privateDomain: String?, dnsName: String, origin: Origin, resources: [ServiceResourceSpec]? = nil,
        whitelist: [WhitelistEntry]? = nil, proxyProtocol: Bool? = nil, connectionBandwidth: Int? = nil,
        dataPlane: ServiceDataPlane? = nil
    ) {
        self.id = id
        self.account = account
        self.zones = zones
        self.autoAcceptConnections = autoAcceptConnections
        self.zoneAffinity = zoneAffinity
        self.privateDomain = privateDomain
        self.dnsName = dnsName
        self.origin = origin
        self.resources = resources
        self.whitelist = whitelist
        self.proxyProtocol = proxyProtocol
        self.connectionBandwidth = connectionBandwidth
        self.dataPlane = dataPlane
    }
}

/// One account ID on a service's whitelist.
public struct WhitelistEntry: Hashable, Sendable, Codable {
    public var service: String
    public var account: String
    public var origin: Origin

    public init(service: String, account: String, origin: Origin) {
        self.service = service
        self.account = account
        self.origin = origin
    }
}

/// An endpoint and its connection, as one principal may see it. The provider of its service
/// sees the connection (ID, service, consumer account, zones, state), not the consumer's VPC
/// internals: `placement` is the consumer's and the operator's only.
public struct EndpointView: Hashable, Sendable, Codable {
    public var id: String
    public var service: String
    /// The consumer's account ID.
    public var account: String
    public var zones: [String]
    public var connection: ConnectionState
    public var origin: Origin
    /// The endpoint's owner and the operator only.
    public var placement: Placement?

    /// Where the endpoint sits in the consumer's VPC, and its names.
    public struct Placement: Hashable, Sendable, Codable {
        public var vpc: String
        public var securityGroups: [String]
        /// `ep-….epsrv-….<region>.<domain>`: every ENI, zone affinity applied.
        public var dnsName: String
        public var enis: [ENIView]

        public init(vpc: String, securityGroups: [String], dnsName: String, enis: [ENIView]) {
            self.vpc = vpc
            self.securityGroups = securityGroups
            self.dnsName = dnsName
            self.enis = enis
        }
    }

    public struct ENIView: Hashable, Sendable, Codable {
        public var zone: String
        public var vswitch: String
        public var address: String
        /// `ep-…-<zone>.epsrv-….<region>.<domain>`: this ENI only.
        public var dnsName: String

        public init(zone: String, vswitch: String, address: String, dnsName: String) {
            self.zone = zone
            self.vswitch = vswitch
            self.address = address
            self.dnsName = dnsName
        }
    }

    public init(
        id: String, service: String, account: String, zones: [String], connection: ConnectionState, origin: Origin,
        placement: Placement? = nil
    ) {
        self.id = id
        self.service = service
        self.account = account
        self.zones = zones
        self.connection = connection
        self.origin = origin
        self.placement = placement
    }

    private enum CodingKeys: String, CodingKey { case id, service, account, zones, connection, origin, placement }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        service = try container.decode(String.self, forKey: .service)
        account = try container.decode(String.self, forKey: .account)
        zones = try container.decode([String].self, forKey: .zones)
        connection = try container.decodeConnectionState(forKey: .connection)
        origin = try container.decode(Origin.self, forKey: .origin)
        placement = try container.decodeIfPresent(Placement.self, forKey: .placement)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(service, forKey: .service)
        try container.encode(account, forKey: .account)
        try container.encode(zones, forKey: .zones)
        try container.encode(connection.rawValue, forKey: .connection)
        try container.encode(origin, forKey: .origin)
        try container.encodeIfPresent(placement, forKey: .placement)
    }
}
