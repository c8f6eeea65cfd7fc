import ZoneLinkCore

/// One row's change: what a store commits. An operation's changes are committed together,
/// in one transaction, before the operation is acknowledged. Applying a change twice has
/// the effect of applying it once, so a store may replay a journal. In JSON, one flat object
/// per change: `{"op": "setConnection", "connection": {"endpoint": "ep-1", "state": "Connected"}}`.
public enum StateChange: Hashable, Sendable, Codable {
    /// Insert or replace the service with this ID.
    case putService(ServiceRecord)
    case deleteService(id: String)
    case addWhitelistEntry(WhitelistRecord)
    case removeWhitelistEntry(WhitelistRecord)
    /// Insert or replace the endpoint with this ID.
    case putEndpoint(EndpointRecord)
    case deleteEndpoint(id: String)
    /// Insert or replace the connection state of this endpoint.
    case setConnection(ConnectionRecord)
    case clearConnection(endpoint: String)
    /// Insert or replace the shift of this zone.
    case putZonalShift(ZonalShift)
    case endZonalShift(zone: String)

    /// True for the changes of zonal shifts (their expiries need a new timer).
    public var isZonalShift: Bool {
        switch self {
        case .putZonalShift, .endZonalShift: true
        default: false
        }
    }

    private enum Op: String, Codable {
        case putService, deleteService, addWhitelistEntry, removeWhitelistEntry
        case putEndpoint, deleteEndpoint, setConnection, clearConnection
        case putZonalShift, endZonalShift
    }

    private enum CodingKeys: String, CodingKey { case op, service, entry, endpoint, connection, id, shift, zone }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(Op.self, forKey: .op) {
        case .putService: self = .putService(try container.decode(ServiceRecord.self, forKey: .service))
        case .deleteService: self = .deleteService(id: try container.decode(String.self, forKey: .id))
        case .addWhitelistEntry: self = .addWhitelistEntry(try container.decode(WhitelistRecord.self, forKey: .entry))
        case .removeWhitelistEntry: self = .removeWhitelistEntry(try container.decode(WhitelistRecord.self, forKey: .entry))
        case .putEndpoint: self = .putEndpoint(try container.decode(EndpointRecord.self, forKey: .endpoint))
        case .deleteEndpoint: self = .deleteEndpoint(id: try container.decode(String.self, forKey: .id))
        case .setConnection: self = .setConnection(try container.decode(ConnectionRecord.self, forKey: .connection))
        case .clearConnection: self = .clearConnection(endpoint: try container.decode(String.self, forKey: .id))
        case .putZonalShift: self = .putZonalShift(try container.decode(ZonalShift.self, forKey: .shift))
        case .endZonalShift: self = .endZonalShift(zone: try container.decode(String.self, forKey: .zone))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .putService(let record):
            try container.encode(Op.putService, forKey: .op)
            try container.encode(record, forKey: .service)
        case .deleteService(let id):
            try container.encode(Op.deleteService, forKey: .op)
            try container.encode(id, forKey: .id)
        case .addWhitelistEntry(let record):
            try container.encode(Op.addWhitelistEntry, forKey: .op)
            try container.encode(record, forKey: .entry)
        case .removeWhitelistEntry(let record):
            try container.encode(Op.removeWhitelistEntry, forKey: .op)
            try container.encode(record, forKey: .entry)
        case .putEndpoint(let record):
            try container.encode(Op.putEndpoint, forKey: .op)
            try container.encode(record, forKey: .endpoint)
        case .deleteEndpoint(let id):
            try container.encode(Op.deleteEndpoint, forKey: .op)
            try container.encode(id, forKey: .id)
        case .setConnection(let record):
            try container.encode(Op.setConnection, forKey: .op)
            try container.encode(record, forKey: .connection)
        case .clearConnection(let endpoint):
            try container.encode(Op.clearConnection, forKey: .op)
            try container.encode(endpoint, forKey: .id)
        case .putZonalShift(let shift):
            try container.encode(Op.putZonalShift, forKey: .op)
            try container.encode(shift, forKey: .shift)
        case .endZonalShift(let zone):
            try container.encode(Op.endZonalShift, forKey: .op)
            try container.encode(zone, forKey: .zone)
        }
    }
}

/// What the control plane manages on top of the config file: services, whitelist entries and
/// endpoints created through the API, recorded connection states (of API and file
/// endpoints alike), and the operator's zonal shifts. A plain value; nothing here reads files or clocks.
///
/// The file's own objects are not copied in: they come from the `Configuration` passed to
/// `configuration(base:)`, so an object's origin is where it is found (`Origin`). Orphans
/// (whitelist entries and connection states of objects gone from the file) are ignored by
/// the merge and removed by `ControlPlane.reloading(base:file:)`.
public struct ControlState: Hashable, Sendable, Codable {
    /// In creation order (the order does not change the merged catalog once every API
    /// endpoint has its addresses recorded, so a store may load rows in any order).
    public private(set) var services: [ServiceRecord]
    public private(set) var whitelist: [WhitelistRecord]
    public private(set) var endpoints: [EndpointRecord]
    public private(set) var connections: [ConnectionRecord]
    /// In the order they were started; one per zone.
    public private(set) var zonalShifts: [ZonalShift]

    public init(
        services: [ServiceRecord] = [], whitelist: [WhitelistRecord] = [], endpoints: [EndpointRecord] = [],
        connections: [ConnectionRecord] = [], zonalShifts: [ZonalShift] = []
    ) {
        self.services = services
        self.whitelist = whitelist
        self.endpoints = endpoints
        self.connections = connections
        self.zonalShifts = zonalShifts
    }

    /// Replays changes, e.g. a store's journal, or an operation's list on the state it was
    /// computed from.
    public init(replaying changes: [StateChange]) {
        self.init()
        apply(changes)
    }

    public func applying(_ changes: [StateChange]) -> ControlState {
        var state = self
        state.apply(changes)
        return state
    }

    public mutating func apply(_ changes: [StateChange]) {
        for change in changes { apply(change) }
    }

    public mutating func apply(_ change: StateChange) {
        switch change {
        case .putService(let record): services.upsert(record, by: \.id)
        case .deleteService(let id): services.removeAll { $0.id == id }
        case .addWhitelistEntry(let record): if !whitelist.contains(record) { whitelist.append(record) }
        case .removeWhitelistEntry(let record): whitelist.removeAll { $0 == record }
        case .putEndpoint(let record): endpoints.upsert(record, by: \.id)
        case .deleteEndpoint(let id): endpoints.removeAll { $0.id == id }
        case .setConnection(let record): connections.upsert(record, by: \.endpoint)
        case .clearConnection(let endpoint): connections.removeAll { $0.endpoint == endpoint }
        case .putZonalShift(let shift): zonalShifts.upsert(shift, by: \.zone)
        case .endZonalShift(let zone): zonalShifts.removeAll { $0.zone == zone }
        }
    }

    public func service(_ id: String) -> ServiceRecord? { services.first { $0.id == id } }
    public func endpoint(_ id: String) -> EndpointRecord? { endpoints.first { $0.id == id } }
    public func connection(of endpoint: String) -> ConnectionState? { connections.first { $0.endpoint == endpoint }?.state }
    public func zonalShift(_ zone: String) -> ZonalShift? { zonalShifts.first { $0.zone == zone } }

    /// The file's configuration with the API's objects added: API whitelist entries join
    /// their service's whitelist, API services and endpoints follow the file's, and every
    /// endpoint with a recorded connection state gets it as its `connection`, and the zonal
    /// shifts join as they are (the file has none).
    /// `Catalog(configuration:file:)` validates and builds the result.
    public func configuration(base: Configuration) -> Configuration {
        var merged = base
        let added = Dictionary(grouping: whitelist, by: \.service)
        func withAdded(_ whitelist: [String], of service: String) -> [String] {
            var result = whitelist
            for entry in added[service] ?? [] where !result.contains(entry.account) { result.append(entry.account) }
            return result
        }
        for i in merged.endpointServices.indices {
            merged.endpointServices[i].whitelist = withAdded(merged.endpointServices[i].whitelist, of: merged.endpointServices[i].id)
        }
        merged.endpointServices += services.map { $0.service(whitelist: withAdded([], of: $0.id)) }
        merged.endpoints += endpoints.map(\.endpoint)
        let recorded = Dictionary(connections.map { ($0.endpoint, $0.state) }, uniquingKeysWith: { $1 })
        for i in merged.endpoints.indices {
            if let state = recorded[merged.endpoints[i].id] { merged.endpoints[i].connection = state }
        }
        merged.zonalShifts = zonalShifts
        return merged
    }
}

extension Array {
    fileprivate mutating func upsert<Key: Equatable>(_ element: Element, by key: KeyPath<Element, Key>) {
        if let i = firstIndex(where: { $0[keyPath: key] == element[keyPath: key] }) {
            self[i] = element
        } else {
            append(element)
        }
    }
}
