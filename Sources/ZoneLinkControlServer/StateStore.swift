import Foundation
import GRDB
import ZoneLinkControl
import ZoneLinkCore

/// The control plane's state on disk: `<state-dir>/state.sqlite`, one table per record type
/// of `ControlState` (services, whitelist entries, endpoints, connections, zonal shifts), one
/// upsert or delete per `StateChange`.
///
/// SQLite in WAL mode with `synchronous = FULL`: `commit` returns once the transaction is on
/// disk, so a change acknowledged after `commit` survives `kill -9` and power loss, and a
/// transaction cut short leaves nothing (SQLite rolls it back on the next open).
///
/// Rows keep their creation order (`seq`), which `ControlState` keeps too: an upsert updates a
/// row in place.
public final class StateStore: Sendable {
    /// The database file.
    public let path: String
    private let pool: DatabasePool

    /// The file name inside a state directory.
    public static let fileName = "state.sqlite"

    /// Opens (creating when missing) `<directory>/state.sqlite`; creates the directory too.
    /// The directory is made 0700 and the database's files 0600: they hold every tenant's
    /// objects, which no other local user may read.
    public static func open(stateDirectory directory: String) throws -> StateStore {
        try StateDirectory.prepare(directory)
        let store = try StateStore(path: (directory as NSString).appendingPathComponent(fileName))
        for suffix in ["", "-wal", "-shm"] { StateDirectory.restrict(store.path + suffix) }
        return store
    }

    /// Opens (creating when missing) the database at `path` and brings its schema up to date.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.label = "zonelink.state"
        self.path = path
        self.pool = try DatabasePool(path: path, configuration: configuration)
        // WAL is DatabasePool's mode; it sets synchronous = NORMAL on its one writing
        // connection, which may lose the last commits on power loss. FULL syncs the WAL at
        // every commit, before `commit` returns.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try Self.migrator.migrate(pool)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: services, whitelist, endpoints, connections") { db in
            try db.execute(sql: """
                CREATE TABLE service (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    account TEXT NOT NULL,
                    resources TEXT NOT NULL,
                    autoAcceptConnections INTEGER NOT NULL,
                    zoneAffinity INTEGER NOT NULL,
                    privateDomain TEXT,
                    proxyProtocol INTEGER NOT NULL
                );
                CREATE TABLE whitelistEntry (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    service TEXT NOT NULL,
                    account TEXT NOT NULL,
                    UNIQUE (service, account)
                );
                CREATE TABLE endpoint (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    account TEXT NOT NULL,
                    service TEXT NOT NULL,
                    vpc TEXT NOT NULL,
                    securityGroups TEXT NOT NULL,
                    zones TEXT NOT NULL
                );
                CREATE TABLE connection (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    endpoint TEXT NOT NULL UNIQUE,
                    state TEXT NOT NULL CHECK (state IN ('Disconnected', 'Connected', 'Rejected'))
                );
                """)
        }
        migrator.registerMigration("v2: zonal shifts") { db in
            try db.execute(sql: """
                CREATE TABLE zonalShift (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    zone TEXT NOT NULL UNIQUE,
                    reason TEXT NOT NULL,
                    startedAt INTEGER NOT NULL,
                    expiresAt INTEGER,
                    drainAt INTEGER
                );
                """)
        }
        return migrator
    }

    // MARK: Reading

    /// The state as committed, rows in creation order.
    public func load() throws -> ControlState {
        try pool.read { db in try Self.load(db) }
    }

    /// `journal_mode` and `synchronous` of the writing connection (tests check WAL and FULL).
    func pragmas() throws -> (journalMode: String, synchronous: Int) {
        try pool.write { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
    }

    static func load(_ db: Database) throws -> ControlState {
        let decoder = JSONDecoder()
        func json<T: Decodable>(_ type: T.Type, _ text: String, _ what: String) throws -> T {
            do {
                return try decoder.decode(type, from: Data(text.utf8))
            } catch {
                throw StateStoreError("\(what) holds invalid JSON: \(error)")
            }
        }
        let services = try Row.fetchAll(db, sql: "SELECT * FROM service ORDER BY seq").map { row in
            let id: String = row["id"]
            return ServiceRecord(
                id: id, account: row["account"],
                resources: try json([ServiceResourceSpec].self, row["resources"], "service \(id): resources"),
                autoAcceptConnections: row["autoAcceptConnections"], zoneAffinity: row["zoneAffinity"],
                privateDomain: row["privateDomain"], proxyProtocol: row["proxyProtocol"])
        }
        let whitelist = try Row.fetchAll(db, sql: "SELECT service, account FROM whitelistEntry ORDER BY seq").map {
            WhitelistRecord(service: $0["service"], account: $0["account"])
        }
        let endpoints = try Row.fetchAll(db, sql: "SELECT * FROM endpoint ORDER BY seq").map { row in
            let id: String = row["id"]
            return EndpointRecord(
                id: id, account: row["account"], service: row["service"], vpc: row["vpc"],
                securityGroups: try json([String].self, row["securityGroups"], "endpoint \(id): securityGroups"),
                zones: try json([ENIRecord].self, row["zones"], "endpoint \(id): zones"))
        }
        let connections = try Row.fetchAll(db, sql: "SELECT endpoint, state FROM connection ORDER BY seq").map { row in
            let endpoint: String = row["endpoint"]
            let text: String = row["state"]
            guard let state = ConnectionState(rawValue: text) else {
                throw StateStoreError("connection of \(endpoint): '\(text)' is not a connection state")
            }
            return ConnectionRecord(endpoint: endpoint, state: state)
        }
        let shifts = try Row.fetchAll(db, sql: "SELECT * FROM zonalShift ORDER BY seq").map { row in
            ZonalShift(zone: row["zone"], reason: row["reason"], startedAt: row["startedAt"], expiresAt: row["expiresAt"], drainAt: row["drainAt"])
        }
        return ControlState(
            services: services, whitelist: whitelist, endpoints: endpoints, connections: connections, zonalShifts: shifts)
    }

    // MARK: Writing

    /// Commits an operation's changes in one transaction: all of them are on disk when this
    /// returns, or, when it throws, none.
    public func commit(_ changes: [StateChange]) async throws {
        guard !changes.isEmpty else { return }
        try await pool.write { db in
            for change in changes { try Self.apply(change, in: db) }
        }
    }

    /// `commit` without suspending, with a hook after each change (tests make it throw to
    /// check that a failed transaction leaves nothing).
    func commitNow(_ changes: [StateChange], afterEach hook: (Int) throws -> Void = { _ in }) throws {
        try pool.write { db in
            for (i, change) in changes.enumerated() {
                try Self.apply(change, in: db)
                try hook(i)
            }
        }
    }

    static func apply(_ change: StateChange, in db: Database) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        switch change {
        case .putService(let record):
            try db.execute(
                sql: """
                    INSERT INTO service (id, account, resources, autoAcceptConnections, zoneAffinity, privateDomain, proxyProtocol)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET
                        account = excluded.account, resources = excluded.resources,
                        autoAcceptConnections = excluded.autoAcceptConnections, zoneAffinity = excluded.zoneAffinity,
                        privateDomain = excluded.privateDomain, proxyProtocol = excluded.proxyProtocol
                    """,
                arguments: [
                    record.id, record.account, try json(record.resources), record.autoAcceptConnections, record.zoneAffinity,
                    record.privateDomain, record.proxyProtocol,
                ])
        case .deleteService(let id):
            try db.execute(sql: "DELETE FROM service WHERE id = ?", arguments: [id])
        case .addWhitelistEntry(let record):
            try db.execute(
                sql: "INSERT INTO whitelistEntry (service, account) VALUES (?, ?) ON CONFLICT (service, account) DO NOTHING",
                arguments: [record.service, record.account])
        case .removeWhitelistEntry(let record):
            try db.execute(
                sql: "DELETE FROM whitelistEntry WHERE service = ? AND account = ?", arguments: [record.service, record.account])
        case .putEndpoint(let record):
            try db.execute(
                sql: """
                    INSERT INTO endpoint (id, account, service, vpc, securityGroups, zones) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET
                        account = excluded.account, service = excluded.service, vpc = excluded.vpc,
                        securityGroups = excluded.securityGroups, zones = excluded.zones
                    """,
                arguments: [record.id, record.account, record.service, record.vpc, try json(record.securityGroups), try json(record.zones)])
        case .deleteEndpoint(let id):
            try db.execute(sql: "DELETE FROM endpoint WHERE id = ?", arguments: [id])
        case .setConnection(let record):
            try db.execute(
                sql: "INSERT INTO connection (endpoint, state) VALUES (?, ?) ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state",
                arguments: [record.endpoint, record.state.rawValue])
        case .clearConnection(let endpoint):
            try db.execute(sql: "DELETE FROM connection WHERE endpoint = ?", arguments: [endpoint])
        case .putZonalShift(let shift):
            try db.execute(
                sql: """
                    INSERT INTO zonalShift (zone, reason, startedAt, expiresAt, drainAt) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (zone) DO UPDATE SET
                        reason = excluded.reason, startedAt = excluded.startedAt, expiresAt = excluded.expiresAt, drainAt = excluded.drainAt
                    """,
                arguments: [shift.zone, shift.reason, shift.startedAt, shift.expiresAt, shift.drainAt])
        case .endZonalShift(let zone):
            try db.execute(sql: "DELETE FROM zonalShift WHERE zone = ?", arguments: [zone])
        }
    }
}

/// The state on disk cannot be read as `ControlState`.
public struct StateStoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An exclusive lock on a state directory (`<state-dir>/lock`, flock), held while the object
/// lives: a second `zonelink serve` on the same directory stops at start instead of serving a
/// second control plane over the same store (and taking over its control socket).
public final class StateDirectoryLock: Sendable {
    public let path: String
    private let fd: Int32

    public init(directory: String) throws {
        try StateDirectory.prepare(directory)
        path = (directory as NSString).appendingPathComponent("lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        StateDirectory.restrict(path)
        guard fd >= 0 else { throw StateStoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "another zonelink serve is using \(directory)" : String(cString: strerror(errno))
            close(fd)
            throw StateStoreError("cannot lock \(path): \(reason)")
        }
    }

    deinit {
        close(fd)
    }
}

/// The state directory's permissions: 0700 for the directory, 0600 for what ZoneLink keeps in
/// it, whatever the umask or an earlier version left (`serve` also sets umask 0077).
public enum StateDirectory {
    /// Creates `directory` (and its parents) when missing and makes it 0700.
    public static func prepare(_ directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard chmod(directory, 0o700) == 0 else {
            throw StateStoreError("cannot make \(directory) private (chmod 0700): \(String(cString: strerror(errno)))")
        }
    }

    /// Makes an existing file 0600; a missing one is left missing.
    public static func restrict(_ file: String) {
        _ = chmod(file, 0o600)
    }
}
