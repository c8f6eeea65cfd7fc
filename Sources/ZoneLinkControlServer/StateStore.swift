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
    public convenience init(path: String) throws {
        try self.init(path: path, migrations: StoreSchema.migrations)
    }

    /// With the first migrations only, as an older zonelink (tests of upgrades and refusals).
    init(path: String, migrations: [StoreSchema.Migration]) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.label = "zonelink.state"
        self.path = path
        self.pool = try DatabasePool(path: path, configuration: configuration)
        // WAL is DatabasePool's mode; it sets synchronous = NORMAL on its one writing
        // connection, which may lose the last commits on power loss. FULL syncs the WAL at
        // every commit, before `commit` returns.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try Self.migrate(pool, path: path, migrations: migrations)
    }

    /// The shared migration list (`StoreSchema`) as GRDB migrations: a database records the
    /// names it ran in `grdb_migrations`, as the first version of this store did.
    private static func migrator(_ migrations: [StoreSchema.Migration]) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.name) { db in
                for statement in migration.statements { try db.execute(sql: StoreDialect.sqlite.sql(statement)) }
            }
        }
        return migrator
    }

    /// Refuses a database that ran migrations this binary does not know, then runs the
    /// missing ones.
    private static func migrate(_ pool: DatabasePool, path: String, migrations: [StoreSchema.Migration]) throws {
        let known = Set(migrations.map(\.name))
        let applied = try pool.read { db -> [String] in
            guard try db.tableExists("grdb_migrations") else { return [] }
            return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        }
        let unknown = applied.filter { !known.contains($0) }
        guard unknown.isEmpty else { throw StoreSchemaTooNew(store: "the SQLite store \(path)", unknown: unknown.sorted()) }
        try migrator(migrations).migrate(pool)
    }

    // MARK: Reading

    /// The state as committed, rows in creation order.
    public func load() throws -> ControlState {
        try pool.read { db in try Self.load(db) }
    }

    /// Runs SQL as it is (tests that write rows as an older version did).
    func execute(_ sql: String) throws {
        try pool.write { db in try db.execute(sql: sql) }
    }

    /// `journal_mode` and `synchronous` of the writing connection (tests check WAL and FULL).
    func pragmas() throws -> (journalMode: String, synchronous: Int) {
        try pool.write { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
    }

    static func load(_ db: Database) throws -> ControlState {
        let services = try Row.fetchAll(db, sql: "SELECT * FROM service ORDER BY seq").map { row in
            try StoredRows.service(
                id: row["id"], account: row["account"], resources: row["resources"],
                autoAcceptConnections: row["autoAcceptConnections"], zoneAffinity: row["zoneAffinity"],
                privateDomain: row["privateDomain"], proxyProtocol: row["proxyProtocol"], connectionBandwidth: row["connectionBandwidth"],
                dataPlane: row["dataPlane"])
        }
        let whitelist = try Row.fetchAll(db, sql: "SELECT service, account FROM whitelistEntry ORDER BY seq").map {
            WhitelistRecord(service: $0["service"], account: $0["account"])
        }
        let endpoints = try Row.fetchAll(db, sql: "SELECT * FROM endpoint ORDER BY seq").map { row in
            try StoredRows.endpoint(
                id: row["id"], account: row["account"], service: row["service"], vpc: row["vpc"],
                securityGroups: row["securityGroups"], zones: row["zones"])
        }
        let connections = try Row.fetchAll(db, sql: "SELECT endpoint, state FROM connection ORDER BY seq").map { row in
            try StoredRows.connection(endpoint: row["endpoint"], state: row["state"])
        }
        let shifts = try Row.fetchAll(db, sql: "SELECT \(StoredRows.zonalShiftColumns) FROM zonalShift ORDER BY seq").map { row in
            ZonalShift(zone: row["zone"], reason: row["reason"], startedAt: row["startedAt"], expiresAt: row["expiresAt"], drainAt: row["drainAt"])
        }
        return ControlState(
            services: services, whitelist: whitelist, endpoints: endpoints, connections: connections, zonalShifts: shifts)
    }

    static func revision(_ db: Database) throws -> Int64 {
        guard let value = try Int64.fetchOne(db, sql: "SELECT value FROM revision WHERE id = 1") else {
            throw StateStoreError("the revision row is missing: the database was changed by something other than zonelink")
        }
        return value
    }

    // MARK: Writing

    /// Commits an operation's changes in one transaction: all of them are on disk when this
    /// returns, or, when it throws, none.
    public func commit(_ changes: [StateChange]) async throws {
        guard !changes.isEmpty else { return }
        try await pool.write { db in
            try db.execute(sql: "UPDATE revision SET value = value + 1 WHERE id = 1")
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
        let statement = try StoredRows.statement(for: change, .sqlite)
        try db.execute(sql: statement.sql, arguments: StatementArguments(statement.values.map { value -> (any DatabaseValueConvertible)? in
            switch value {
            case .text(let text): text
            case .integer(let number): number
            }
        }))
    }
}

extension StateStore: ControlStore {
    public var name: String { "the SQLite store \(path)" }

    public func loadState() async throws -> StoredState {
        try await pool.read { db in StoredState(state: try Self.load(db), revision: try Self.revision(db)) }
    }

    /// Only this process writes the file (`StateDirectoryLock`), so a conflict here means a
    /// caller decided on a stale state: the check costs one read in the transaction.
    public func commit(_ changes: [StateChange], over revision: Int64) async throws -> Int64 {
        guard !changes.isEmpty else { return revision }
        let name = name
        return try await pool.write { db in
            let found = try Self.revision(db)
            guard found == revision else { throw StoreConflict(store: name, expected: revision, found: found) }
            try db.execute(sql: "UPDATE revision SET value = ? WHERE id = 1", arguments: [revision + 1])
            for change in changes { try Self.apply(change, in: db) }
            return revision + 1
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
