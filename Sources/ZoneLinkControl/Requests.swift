import ZoneLinkCore

/// Request bodies, as a client sends them: plain fields, optional where a default applies.
/// Key paths in `ControlError.invalid` name these fields (`zones[0].address`).

/// Creates an endpoint service (the console's "Create Endpoint Service").
public struct CreateServiceRequest: Hashable, Sendable, Codable {
    /// `epsrv-…`; nil: `epsrv-` and a generated suffix.
    public var id: String?
    /// The provider: nil for the principal's own account; the operator must name one.
    public var account: String?
    public var resources: [ServiceResourceSpec]
    /// Default false: connections start `Disconnected` and wait for the provider.
    public var autoAcceptConnections: Bool?
    /// Default false.
    public var zoneAffinity: Bool?
    public var privateDomain: String?
    /// PROXY protocol v2 toward the provider; default false.
    public var proxyProtocol: Bool?
    /// Mbit/s per endpoint connection and direction; nil: no cap.
    public var connectionBandwidth: Int?
    /// What carries the flows; nil: `relay`.
    public var dataPlane: ServiceDataPlane?

    public init(
        id: String? = nil, account: String? = nil, resources: [ServiceResourceSpec], autoAcceptConnections: Bool? = nil,
        zoneAffinity: Bool? = nil, privateDomain: String? = nil, proxyProtocol: Bool? = nil, connectionBandwidth: Int? = nil,
        dataPlane: ServiceDataPlane? = nil
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
}

/// Changes what a provider may change of a service; nil leaves a field as it is.
/// Existing connections keep their state when auto-accept changes.
public struct UpdateServiceRequest: Hashable, Sendable, Codable {
    public var autoAcceptConnections: Bool?
    public var zoneAffinity: Bool?
    /// A new cap, Mbit/s per endpoint connection and direction; open flows follow it.
    public var connectionBandwidth: Int?
    /// True: lift the cap.
    public var removeConnectionBandwidth: Bool?
    /// A new data plane: open flows keep the one they started on (`docs/gateway.md`).
    public var dataPlane: ServiceDataPlane?

    public init(
        autoAcceptConnections: Bool? = nil, zoneAffinity: Bool? = nil, connectionBandwidth: Int? = nil,
        removeConnectionBandwidth: Bool? = nil, dataPlane: ServiceDataPlane? = nil
    ) {
        self.autoAcceptConnections = autoAcceptConnections
        self.zoneAffinity = zoneAffinity
        self.connectionBandwidth = connectionBandwidth
        self.removeConnectionBandwidth = removeConnectionBandwidth
        self.dataPlane = dataPlane
    }
}

/// One zone of a new endpoint: the console's "Zone and vSwitch".
public struct ZoneChoice: Hashable, Sendable, Codable {
    public var zone: String
    public var vswitch: String
    /// An IPv4 address inside the vSwitch; nil: the lowest free one is allocated.
    public var address: String?

    public init(zone: String, vswitch: String, address: String? = nil) {
        self.zone = zone
        self.vswitch = vswitch
        self.address = address
    }
}

/// Creates an endpoint (the console's "Create Endpoint").
public struct CreateEndpointRequest: Hashable, Sendable, Codable {
    /// `ep-…`; nil: `ep-` and a generated suffix.
    public var id: String?
    /// The consumer: nil for the principal's own account; the operator must name one.
    public var account: String?
    public var service: String
    public var vpc: String
    /// At most five, of the VPC.
    public var securityGroups: [String]?
    public var zones: [ZoneChoice]

    public init(
        id: String? = nil, account: String? = nil, service: String, vpc: String, securityGroups: [String]? = nil,
        zones: [ZoneChoice]
    ) {
        self.id = id
        self.account = account
        self.service = service
        self.vpc = vpc
        self.securityGroups = securityGroups
        self.zones = zones
    }
}
