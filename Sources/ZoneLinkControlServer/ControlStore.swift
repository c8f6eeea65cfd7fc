import Foundation
import ZoneLinkControl
import ZoneLinkCore

/// Where the control plane's state is committed: the embedded SQLite file (`StateStore`, the
/// default) or a PostgreSQL database several hosts share (`PostgresStateStore`).
///
/// Both keep the same schema (`StoreSchema`) and the same rows (`StoredRows`), and both raise
/// a revision with every commit. `commit(_:over:)` names the revision the changes were
/// decided on: when the store holds another one, another host committed first, and the
/// commit throws `StoreConflict` having written nothing. So no change is ever decided on a
/// state that is not the one it lands on (no lost update).
///
/// Callers run one call at a time (`ControlService` serialises them).
public protocol ControlStore: AnyObject, Sendable {
    /// The store as messages name it: "the SQLite store <path>", "PostgreSQL at host:port/db".
    var name: String { get }
    /// The state as committed, rows in creation order, and its revision.
    func loadState() async throws -> StoredState
    /// Commits `changes` in one transaction if the store is still at `revision`, and returns
    /// the new revision (`revision` itself when there is nothing to commit). All of them are
    /// committed when this returns or, when it throws, none.
    /// - Throws: `StoreConflict` when the store moved on; `StoreUnavailable` when it cannot be
    ///   reached (the commit may then have happened or not: a reload tells).
    func commit(_ changes: [StateChange], over revision: Int64) async throws -> Int64
}

/// A committed state and the store's revision it was read at.
public struct StoredState: Hashable, Sendable {
    public var state: ControlState
    public var revision: Int64

    public init(state: ControlState, revision: Int64) {
        self.state = state
        self.revision = revision
    }
}

/// Another host committed since the state a change was decided on: nothing was written.
public struct StoreConflict: Error, CustomStringConvertible, Sendable {
    public let store: String
    public let expected: Int64
    public let found: Int64
    public var description: String {
        "another host changed the catalog in \(store) first (revision \(found), this host decided on \(expected))"
    }
}

/// The store cannot be reached: the data plane keeps serving the last applied catalog, and
/// changes are refused until it is back.
public struct StoreUnavailable: Error, CustomStringConvertible, Sendable {
    public let store: String
    public let reason: String
    public init(store: String, reason: String) {
        self.store = store
        self.reason = reason
    }
    public var description: String {
        "\(store) is unavailable (\(reason)); nothing changed, DNS and the gateway keep serving the last applied catalog: retry later"
    }
}

/// A value bound to a statement: both stores bind these, each in its own way.
public enum StoredValue: Hashable, Sendable {
    case text(String?)
    case integer(Int64?)
}

/// One SQL statement and its values.
public struct StoredStatement: Hashable, Sendable {
    public var sql: String
    public var values: [StoredValue]
}

/// The rows of `ControlState` as both stores write and read them: one statement per
/// `StateChange`, lists as JSON text, booleans as 0 and 1.
public enum StoredRows {
    /// The columns of `service`, in the order `service(...)` takes them.
    public static let serviceColumns =
        "id, account, resources, autoAcceptConnections, zoneAffinity, privateDomain, proxyProtocol, connectionBandwidth, dataPlane"
    public static let endpointColumns = "id, account, service, vpc, securityGroups, zones"
    public static let zonalShiftColumns = "zone, reason, startedAt, expiresAt, drainAt"

    /// The statement that makes `change` in the store.
    public static func statement(for change: StateChange, _ dialect: StoreDialect) throws -> StoredStatement {
        func p(_ i: Int) -> String { dialect.parameter(i) }
        func flag(_ value: Bool) -> StoredValue { .integer(value ? 1 : 0) }
        switch change {
        case .putService(let record):
            return StoredStatement(
                sql: """
                    INSERT INTO service (\(serviceColumns))
                    VALUES (\((1...9).map(p).joined(separator: ", ")))
                    ON CONFLICT (id) DO UPDATE SET
                        account = excluded.account, resources = excluded.resources,
                        autoAcceptConnections = excluded.autoAcceptConnections, zoneAffinity = excluded.zoneAffinity,
                        privateDomain = excluded.privateDomain, proxyProtocol = excluded.proxyProtocol,
                        connectionBandwidth = excluded.connectionBandwidth, dataPlane = excluded.dataPlane
                    """,
                values: [
                    .text(record.id), .text(record.account), .text(try json(record.resources)), flag(record.autoAcceptConnections),
                    flag(record.zoneAffinity), .text(record.privateDomain), flag(record.proxyProtocol),
                    .integer(record.connectionBandwidth.map(Int64.init)), .text(record.dataPlane.rawValue),
                ])
        case .deleteService(let id):
            return StoredStatement(sql: "DELETE FROM service WHERE id = \(p(1))", values: [.text(id)])
        case .addWhitelistEntry(let record):
            return StoredStatement(
                sql: "INSERT INTO whitelistEntry (service, account) VALUES (\(p(1)), \(p(2))) ON CONFLICT (service, account) DO NOTHING",
                values: [.text(record.service), .text(record.account)])
        case .removeWhitelistEntry(let record):
            return StoredStatement(
                sql: "DELETE FROM whitelistEntry WHERE service = \(p(1)) AND account = \(p(2))",
                values: [.text(record.service), .text(record.account)])
        case .putEndpoint(let record):
            return StoredStatement(
                sql: """
                    INSERT INTO endpoint (\(endpointColumns)) VALUES (\((1...6).map(p).joined(separator: ", ")))
                    ON CONFLICT (id) DO UPDATE SET
                        account = excluded.account, service = excluded.service, vpc = excluded.vpc,
                        securityGroups = excluded.securityGroups, zones = excluded.zones
                    """,
                values: [
                    .text(record.id), .text(record.account), .text(record.service), .text(record.vpc),
                    .text(try json(record.securityGroups)), .text(try json(record.zones)),
                ])
        case .deleteEndpoint(let id):
            return StoredStatement(sql: "DELETE FROM endpoint WHERE id = \(p(1))", values: [.text(id)])
        case .setConnection(let record):
            return StoredStatement(
                sql: "INSERT INTO connection (endpoint, state) VALUES (\(p(1)), \(p(2))) ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state",
                values: [.text(record.endpoint), .text(record.state.rawValue)])
        case .clearConnection(let endpoint):
            return StoredStatement(sql: "DELETE FROM connection WHERE endpoint = \(p(1))", values: [.text(endpoint)])
        case .putZonalShift(let shift):
            return StoredStatement(
                sql: """
                    INSERT INTO zonalShift (\(zonalShiftColumns)) VALUES (\((1...5).map(p).joined(separator: ", ")))
                    ON CONFLICT (zone) DO UPDATE SET
                        reason = excluded.reason, startedAt = excluded.startedAt, expiresAt = excluded.expiresAt, drainAt = excluded.drainAt
                    """,
                values: [.text(shift.zone), .text(shift.reason), .integer(shift.startedAt), .integer(shift.expiresAt), .integer(shift.drainAt)])
        case .endZonalShift(let zone):
            return StoredStatement(sql: "DELETE FROM zonalShift WHERE zone = \(p(1))", values: [.text(zone)])
        }
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String, _ what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw StateStoreError("\(what) holds invalid JSON: \(error)")
        }
    }

    static func service(
        id: String, account: String, resources: String, autoAcceptConnections: Bool, zoneAffinity: Bool, privateDomain: String?,
        proxyProtocol: Bool, connectionBandwidth: Int?, dataPlane: String
    ) throws -> ServiceRecord {
        guard let plane = ServiceDataPlane(rawValue: dataPlane) else {
            throw StateStoreError("service \(id): dataPlane '\(dataPlane)' is none of relay, kernel: the row was written by something other than zonelink")
        }
        return ServiceRecord(
            id: id, account: account, resources: try decode([ServiceResourceSpec].self, resources, "service \(id): resources"),
            autoAcceptConnections: autoAcceptConnections, zoneAffinity: zoneAffinity, privateDomain: privateDomain,
            proxyProtocol: proxyProtocol, connectionBandwidth: connectionBandwidth, dataPlane: plane)
    }

    static func endpoint(id: String, account: String, service: String, vpc: String, securityGroups: String, zones: String) throws
        -> EndpointRecord
    {
        EndpointRecord(
            id: id, account: account, service: service, vpc: vpc,
            securityGroups: try decode([String].self, securityGroups, "endpoint \(id): securityGroups"),
            zones: try decode([ENIRecord].self, zones, "endpoint \(id): zones"))
    }

    static func connection(endpoint: String, state text: String) throws -> ConnectionRecord {
        guard let state = ConnectionState(rawValue: text) else {
            throw StateStoreError("connection of \(endpoint): '\(text)' is not a connection state")
        }
        return ConnectionRecord(endpoint: endpoint, state: state)
    }
}

extension StoreDialect {
    /// The `i`th (from 1) bound parameter.
    func parameter(_ i: Int) -> String {
        switch self {
        case .sqlite: "?"
        case .postgres: "$\(i)"
        }
    }
}
