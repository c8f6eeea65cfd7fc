import ZoneLinkCore

/// The rows the control plane adds to the config file's objects. Account references are
/// account IDs. Each record is one row for a store; `StateChange` says which row changes.

/// A load balancer serving a service in one zone (as in the file's `resources`).
public struct ServiceResourceSpec: Hashable, Sendable, Codable {
    public var zone: String
    public var loadBalancer: String

    public init(zone: String, loadBalancer: String) {
        self.zone = zone
        self.loadBalancer = loadBalancer
    }
}

/// An endpoint service created through the API. Its whitelist is kept as `WhitelistRecord`s.
public struct ServiceRecord: Hashable, Sendable, Codable {
    public var id: String
    /// The provider's account ID.
    public var account: String
    public var resources: [ServiceResourceSpec]
    public var autoAcceptConnections: Bool
    public var zoneAffinity: Bool
    public var privateDomain: String?
    public var proxyProtocol: Bool
    /// Mbit/s per endpoint connection and direction; nil: no cap.
    public var connectionBandwidth: Int?
    /// What carries the service's flows.
    public var dataPlane: ServiceDataPlane

    public init(
        id: String, account: String, resources: [ServiceResourceSpec], autoAcceptConnections: Bool = false,
        zoneAffinity: Bool = false, privateDomain: String? = nil, proxyProtocol: Bool = false, connectionBandwidth: Int? = nil,
        dataPlane: ServiceDataPlane = .relay
    ) {
        self.id = id
        self.account = account
        self.resources = resources
        self.autoAcceptConnections = autoAcceptConnections
        self.zoneAffinity = zoneAffinity
        self.privateDomain = privateDomain
        self.proxyProtocol = proxyProtocol
        self.connectionBandwidth = connectionBandwidth
        self.dataPlane = dataPlane
    }

    private enum CodingKeys: String, CodingKey {
        case id, account, resources, autoAcceptConnections, zoneAffinity, privateDomain, proxyProtocol, connectionBandwidth, dataPlane
    }

    /// A record saved before `dataPlane` existed (`last-applied.json` of an older zonelink) is a relayed service.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), account: try c.decode(String.self, forKey: .account),
            resources: try c.decode([ServiceResourceSpec].self, forKey: .resources),
            autoAcceptConnections: try c.decode(Bool.self, forKey: .autoAcceptConnections),
            zoneAffinity: try c.decode(Bool.self, forKey: .zoneAffinity),
            privateDomain: try c.decodeIfPresent(String.self, forKey: .privateDomain),
            proxyProtocol: try c.decode(Bool.self, forKey: .proxyProtocol),
            connectionBandwidth: try c.decodeIfPresent(Int.self, forKey: .connectionBandwidth),
            dataPlane: try c.decodeIfPresent(ServiceDataPlane.self, forKey: .dataPlane) ?? .relay)
    }

    func service(whitelist: [String]) -> EndpointService {
        EndpointService(
            id: id, account: account,
            resources: resources.map { ServiceResource(zone: $0.zone, loadBalancer: $0.loadBalancer) },
            autoAcceptConnections: autoAcceptConnections, zoneAffinity: zoneAffinity, whitelist: whitelist,
            privateDomain: privateDomain, proxyProtocol: proxyProtocol, connectionBandwidth: connectionBandwidth, dataPlane: dataPlane)
    }
}

/// An account ID added to a service's whitelist through the API (the service may be declared
/// in the file or created through the API).
public struct WhitelistRecord: Hashable, Sendable, Codable {
    public var service: String
    public var account: String

    public init(service: String, account: String) {
        self.service = service
        self.account = account
    }
}

/// An endpoint's ENI in one zone. The address is recorded once allocated, so that an API
/// endpoint keeps its address whatever the file later declares; it is nil only inside the
/// control plane, while an endpoint is being created.
public struct ENIRecord: Hashable, Sendable, Codable {
    public var zone: String
    public var vswitch: String
    public var address: IPv4Address?

    public init(zone: String, vswitch: String, address: IPv4Address? = nil) {
        self.zone = zone
        self.vswitch = vswitch
        self.address = address
    }

    private enum CodingKeys: String, CodingKey { case zone, vswitch, address }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        zone = try container.decode(String.self, forKey: .zone)
        vswitch = try container.decode(String.self, forKey: .vswitch)
        if let text = try container.decodeIfPresent(String.self, forKey: .address) {
            guard let address = IPv4Address(text) else {
                throw DecodingError.dataCorruptedError(forKey: .address, in: container, debugDescription: "'\(text)' is not an IPv4 address")
            }
            self.address = address
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(zone, forKey: .zone)
        try container.encode(vswitch, forKey: .vswitch)
        try container.encodeIfPresent(address?.description, forKey: .address)
    }

    /// The record of a catalog's ENI (its address once allocated).
    public init(_ eni: ENI) { self.init(zone: eni.zone, vswitch: eni.vswitch, address: eni.address) }

    /// This record as the catalog's ENI.
    public var eni: ENI { ENI(zone: zone, vswitch: vswitch, address: address) }
}

/// An endpoint created through the API. Its connection state is a `ConnectionRecord`.
public struct EndpointRecord: Hashable, Sendable, Codable {
    public var id: String
    /// The consumer's account ID.
    public var account: String
    public var service: String
    public var vpc: String
    public var securityGroups: [String]
    public var zones: [ENIRecord]

    public init(id: String, account: String, service: String, vpc: String, securityGroups: [String] = [], zones: [ENIRecord]) {
        self.id = id
        self.account = account
        self.service = service
        self.vpc = vpc
        self.securityGroups = securityGroups
        self.zones = zones
    }

    var endpoint: Endpoint {
        Endpoint(
            id: id, account: account, service: service, vpc: vpc, securityGroups: securityGroups,
            enis: zones.map(\.eni))
    }
}

/// The recorded state of one endpoint's connection: every API endpoint has one from its
/// creation; a file endpoint has one once its provider accepted, rejected or disconnected it
/// (or its service's auto-accept changed). A recorded state wins over the file's
/// `connection:`, which is only the initial state.
public struct ConnectionRecord: Hashable, Sendable, Codable {
    public var endpoint: String
    public var state: ConnectionState

    public init(endpoint: String, state: ConnectionState) {
        self.endpoint = endpoint
        self.state = state
    }

    private enum CodingKeys: String, CodingKey { case endpoint, state }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        endpoint = try container.decode(String.self, forKey: .endpoint)
        state = try container.decodeConnectionState(forKey: .state)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(endpoint, forKey: .endpoint)
        try container.encode(state.rawValue, forKey: .state)
    }
}

extension KeyedDecodingContainer {
    /// `ConnectionState` is not `Codable` in Core; it travels as its console name.
    func decodeConnectionState(forKey key: Key) throws -> ConnectionState {
        let text = try decode(String.self, forKey: key)
        guard let state = ConnectionState(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self,
                debugDescription: "'\(text)' is not a connection state (Disconnected, Connected, Rejected)")
        }
        return state
    }
}
