import Foundation
import Logging
import NIOCore
import PostgresNIO
import ZoneLinkControl
import ZoneLinkCore

/// The control plane's state in a PostgreSQL database that several ZoneLink hosts share: the
/// same tables as the SQLite store (`StoreSchema`), written by one transaction per change.
///
/// - Commits: a transaction raises the one-row `revision` only if it still holds the revision
///   the change was decided on (else `StoreConflict`, nothing written), writes the rows, and
///   sends `NOTIFY zonelink_revision, '<new revision>'`, which PostgreSQL delivers to every
///   listening host when, and only if, the transaction commits.
/// - Other hosts' commits: `follow(_:)` listens on its own connection and reports each
///   notified revision, and `nil` (reload everything) after every (re)connection, since
///   notifications sent while a host was away are lost.
/// - Outages: a call while the server cannot be reached throws `StoreUnavailable` at once;
///   the next connection attempt waits `reconnectDelay` after a failure, doubling up to
///   `maxReconnectDelay`.
///
/// Calls take turns (`Turns`): they share one connection, and a call's transaction must not
/// take in another's statements. (A follower's catch-up reading beside a commit, or a reader
/// beside the service, would otherwise run inside the other's transaction, and see its old
/// snapshot or be rolled back with it.)
public actor PostgresStateStore: ControlStore {
    public nonisolated let name: String
    public nonisolated let location: PostgresLocation
    private let logger: Logger
    private var connection: PostgresConnection?
    private var nextConnectionID = 1
    private var retryAt: ContinuousClock.Instant?
    private var delay: Duration
    private var lastFailure = ""
    private let migrations: [StoreSchema.Migration]
    /// Whether this process brought the schema up to date yet (on its first connection,
    /// which may come after a start while the server was down).
    private var migrated = false
    /// Set by `close()`: no connection is opened again (postgres-nio requires every connection
    /// closed before it is released, so none may outlive the store's last call).
    private var closed = false
    private let turns = Turns()

    /// The NOTIFY channel commits announce their revision on.
    public static let channel = "zonelink_revision"
    /// How long one connection attempt may take before the store counts as unreachable.
    public static let connectTimeout = Duration.seconds(5)
    /// The wait before the first reconnection attempt; it doubles after each failure.
    public static let reconnectDelay = Duration.milliseconds(250)
    public static let maxReconnectDelay = Duration.seconds(10)
    /// An advisory lock key (any constant): hosts starting together migrate one at a time.
    static let migrationLock: Int64 = 0x7A6F_6E65_6C69_6E6B

    public init(location: PostgresLocation, logger: Logger) {
        self.init(location: location, logger: logger, migrations: StoreSchema.migrations)
    }

    /// With the first migrations only, as an older zonelink (tests of upgrades and refusals).
    init(location: PostgresLocation, logger: Logger, migrations: [StoreSchema.Migration]) {
        self.migrations = migrations
        self.location = location
        self.name = "the PostgreSQL store \(location)"
        self.logger = logger
        self.delay = Self.reconnectDelay
    }

    /// Connects and brings the schema up to date (one host at a time).
    /// - Throws: `StoreUnavailable`; `StoreSchemaTooNew` when a newer zonelink migrated the
    ///   database; `StateStoreError` when the server refused a migration.
    public func open() async throws {
        await turns.acquire()
        defer { turns.release() }
        _ = try await connected()
    }

    // MARK: ControlStore

    public func loadState() async throws -> StoredState {
        try await withConnection { connection in
            try await self.transaction(on: connection, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") {
                let revision = try await self.revision(connection)
                return StoredState(state: try await self.load(connection), revision: revision)
            }
        }
    }

    public func commit(_ changes: [StateChange], over revision: Int64) async throws -> Int64 {
        guard !changes.isEmpty else { return revision }
        let statements = try changes.map { try StoredRows.statement(for: $0, .postgres) }
        return try await withConnection { connection in
            try await self.transaction(on: connection, begin: "BEGIN") {
                var raise = PostgresBindings()
                raise.append(revision)
                let raised = try await connection.query(
                    PostgresQuery(unsafeSQL: "UPDATE revision SET value = value + 1 WHERE id = 1 AND value = $1 RETURNING value", binds: raise),
                    logger: self.logger
                ).collect()
                guard let row = raised.first else {
                    throw StoreConflict(store: self.name, expected: revision, found: try await self.revision(connection))
                }
                let next = try row.decode(Int64.self)
                for statement in statements {
                    var binds = PostgresBindings()
                    for value in statement.values {
                        switch value {
                        case .text(let text): if let text { binds.append(text) } else { binds.appendNull() }
                        case .integer(let number): if let number { binds.append(number) } else { binds.appendNull() }
                        }
                    }
                    _ = try await connection.query(PostgresQuery(unsafeSQL: statement.sql, binds: binds), logger: self.logger).collect()
                }
                var notify = PostgresBindings()
                notify.append(Self.channel)
                notify.append(String(next))
                _ = try await connection.query(PostgresQuery(unsafeSQL: "SELECT pg_notify($1, $2)", binds: notify), logger: self.logger).collect()
                return next
            }
        }
    }

    // MARK: Heartbeats

    /// Writes this host's heartbeat (the zones it carries, the ENIs of them it finds
    /// unhealthy) stamped with the database's clock, and returns the other hosts' last ones
    /// with their age by that same clock.
    /// - Throws: `StoreUnavailable`, as every call.
    public func beat(host: String, zones: [String], unhealthy: [ENIID]) async throws -> [PeerBeat] {
        let now = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
        return try await withConnection { connection in
            var binds = PostgresBindings()
            binds.append(host)
            binds.append(try Self.json(zones))
            binds.append(try Self.json(unhealthy.map(\.description)))
            _ = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO hostHeartbeat (host, zones, unhealthy, beatAt) VALUES ($1, $2, $3, \(now))
                        ON CONFLICT (host) DO UPDATE SET zones = EXCLUDED.zones, unhealthy = EXCLUDED.unhealthy, beatAt = EXCLUDED.beatAt
                        """, binds: binds),
                logger: self.logger
            ).collect()
            var others = PostgresBindings()
            others.append(host)
            var peers: [PeerBeat] = []
            let rows = try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT host, zones, unhealthy, \(now) - beatAt FROM hostHeartbeat WHERE host <> $1", binds: others),
                logger: self.logger)
            for try await (peer, zones, unhealthy, age) in rows.decode((String, String, String, Int64).self) {
                // A row another version or a hand wrote wrongly counts as a host with no zone.
                let zoneList = (try? JSONDecoder().decode([String].self, from: Data(zones.utf8))) ?? []
                let eniList = ((try? JSONDecoder().decode([String].self, from: Data(unhealthy.utf8))) ?? []).compactMap(ENIID.init)
                peers.append(PeerBeat(host: peer, zones: zoneList, unhealthy: eniList, age: .milliseconds(max(0, age))))
            }
            return peers
        }
    }

    private static func json(_ strings: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(strings), as: UTF8.self)
    }

    // MARK: Following other hosts

    /// Reports what other hosts commit until the task is cancelled: `nil` once listening
    /// (after the first connection and every reconnection: load everything), then each
    /// notified revision. Reconnects with the same backoff as the store's calls; `onChange`
    /// runs one report at a time.
    public nonisolated func follow(_ onChange: @escaping @Sendable (Int64?) async -> Void) async {
        var delay = Self.reconnectDelay
        var id = 1_000_000
        while !Task.isCancelled {
            id += 1
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: configuration(), id: id, logger: logger)
                var failure: (any Error)?
                do {
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: Self.channel) { notifications in
                            logger.info("\(name): listening for other hosts' changes")
                            delay = Self.reconnectDelay
                            await self.reconnected()
                            await onChange(nil)
                            for try await notification in notifications {
                                await onChange(Int64(notification.payload))
                            }
                        }
                    } onCancel: {
                        connection.close().whenComplete { _ in }
                    }
                } catch {
                    failure = error
                }
                // Closed before it is released, as postgres-nio requires.
                try? await connection.close()
                if Task.isCancelled { break }
                logger.warning("\(name): the notification connection ended (\(failure.map(Self.describe) ?? "no error")); reconnecting")
            } catch {
                if Task.isCancelled { break }
                logger.warning("\(name): not listening for other hosts' changes: \(Self.describe(error)); next attempt in \(delay)")
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, Self.maxReconnectDelay)
        }
    }

    /// The follower reached the server: the next call tries at once, whatever the backoff.
    func reconnected() {
        retryAt = nil
    }

    /// Closes the connection (tests, shutdown).
    /// A store released without `close()` (a start that failed half way, a test that threw)
    /// still closes its connection: postgres-nio requires a connection closed before it is
    /// released, and the completion keeps it alive until then.
    deinit {
        if let connection, !connection.isClosed {
            connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
        }
    }

    public func close() async {
        closed = true
        if let connection { try? await connection.close() }
        connection = nil
    }

    // MARK: Connection

    nonisolated func configuration() -> PostgresConnection.Configuration {
        let password = location.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
        var configuration: PostgresConnection.Configuration
        if let socket = location.socketPath {
            configuration = .init(unixSocketPath: socket, username: location.user, password: password, database: location.database)
        } else {
            configuration = .init(
                host: location.host ?? "localhost", port: location.port, username: location.user, password: password,
                database: location.database, tls: .disable)
        }
        configuration.options.connectTimeout = .milliseconds(Self.connectTimeout.components.seconds * 1000)
        return configuration
    }

    /// Runs `body` on the connection, connecting first when there is none. A failure of the
    /// connection (not a refused statement) drops it: this call and the calls until the next
    /// attempt throw `StoreUnavailable`.
    private func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        await turns.acquire()
        defer { turns.release() }
        let connection = try await connected()
        do {
            return try await body(connection)
        } catch let error as StoreConflict {
            throw error
        } catch let error as StoreSchemaTooNew {
            throw error
        } catch let error as StateStoreError {
            throw error
        } catch {
            if let error = error as? PSQLError, error.code == .server, !connection.isClosed {
                throw StateStoreError("\(name) refused a statement: \(Self.describe(error))")
            }
            try? await connection.close()
            self.connection = nil
            failed(Self.describe(error))
            throw StoreUnavailable(store: name, reason: lastFailure)
        }
    }

    private func connected() async throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        connection = nil
        guard !closed else { throw StoreUnavailable(store: name, reason: "this host closed its connection (shutting down)") }
        let now = ContinuousClock.now
        if let retryAt, now < retryAt {
            throw StoreUnavailable(store: name, reason: "\(lastFailure); next attempt in \(retryAt - now)")
        }
        do {
            nextConnectionID += 1
            let connection = try await PostgresConnection.connect(
                configuration: configuration(), id: nextConnectionID, logger: logger)
            if !migrated {
                do {
                    try await migrate(connection)
                } catch {
                    try? await connection.close()
                    if let error = error as? PSQLError, error.code != .server { throw error }
                    throw error as? StoreSchemaTooNew ?? StateStoreError("\(name): migrating the schema failed: \(Self.describe(error))")
                }
                migrated = true
            }
            guard !closed else {
                try? await connection.close()
                throw StoreUnavailable(store: name, reason: "this host closed its connection (shutting down)")
            }
            self.connection = connection
            if retryAt != nil { logger.notice("\(name): connected again") }
            retryAt = nil
            delay = Self.reconnectDelay
            return connection
        } catch let error as StoreSchemaTooNew {
            throw error
        } catch let error as StateStoreError {
            throw error
        } catch let error as StoreUnavailable {
            throw error
        } catch {
            failed(Self.describe(error))
            throw StoreUnavailable(store: name, reason: lastFailure)
        }
    }

    private func failed(_ reason: String) {
        lastFailure = reason
        retryAt = ContinuousClock.now + delay
        logger.warning("\(name) unreachable: \(reason); next attempt in \(delay)")
        delay = min(delay * 2, Self.maxReconnectDelay)
    }

    /// `body` between `begin` and COMMIT; any error rolls back (when the connection still can).
    private func transaction<T: Sendable>(
        on connection: PostgresConnection, begin: String, _ body: () async throws -> T
    ) async throws -> T {
        // Every statement's rows are collected: the call returns once the server completed it
        // (an uncollected COMMIT could still be in flight when the change is acknowledged).
        _ = try await connection.query(PostgresQuery(unsafeSQL: begin), logger: logger).collect()
        do {
            let value = try await body()
            _ = try await connection.query("COMMIT", logger: logger).collect()
            return value
        } catch {
            if !connection.isClosed { _ = try? await connection.query("ROLLBACK", logger: logger).collect() }
            throw error
        }
    }

    /// What went wrong, in words a user can act on (PSQLError's own description hides it).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            return "\(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    // MARK: Schema

    private func migrate(_ connection: PostgresConnection) async throws {
        try await transaction(on: connection, begin: "BEGIN") {
            var lock = PostgresBindings()
            lock.append(Self.migrationLock)
            _ = try await connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock($1)", binds: lock), logger: logger).collect()
            _ = try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS zonelink_schema (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, appliedAt TIMESTAMPTZ NOT NULL DEFAULT now())
                """, logger: logger).collect()
            var applied: [String] = []
            for try await name in try await connection.query("SELECT name FROM zonelink_schema ORDER BY version", logger: logger)
                .decode(String.self)
            {
                applied.append(name)
            }
            let known = Set(migrations.map(\.name))
            let unknown = applied.filter { !known.contains($0) }
            guard unknown.isEmpty else { throw StoreSchemaTooNew(store: name, unknown: unknown) }
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: StoreDialect.postgres.sql(statement)), logger: logger).collect()
                }
                var record = PostgresBindings()
                record.append(migration.version)
                record.append(migration.name)
                _ = try await connection.query(
                    PostgresQuery(unsafeSQL: "INSERT INTO zonelink_schema (version, name) VALUES ($1, $2)", binds: record), logger: logger
                ).collect()
                logger.notice("\(name): schema migrated", metadata: ["migration": "\(migration.name)"])
            }
        }
    }

    // MARK: Rows

    private func revision(_ connection: PostgresConnection) async throws -> Int64 {
        let rows = try await connection.query("SELECT value FROM revision WHERE id = 1", logger: logger).collect()
        guard let row = rows.first else {
            throw StateStoreError("\(name): the revision row is missing: the database was changed by something other than zonelink")
        }
        return try row.decode(Int64.self)
    }

    private func load(_ connection: PostgresConnection) async throws -> ControlState {
        var services: [ServiceRecord] = []
        let serviceRows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(StoredRows.serviceColumns) FROM service ORDER BY seq"), logger: logger)
        for try await (id, account, resources, autoAccept, affinity, privateDomain, proxy, bandwidth, dataPlane) in serviceRows.decode(
            (String, String, String, Int, Int, String?, Int, Int?, String).self)
        {
            services.append(
                try StoredRows.service(
                    id: id, account: account, resources: resources, autoAcceptConnections: autoAccept != 0, zoneAffinity: affinity != 0,
                    privateDomain: privateDomain, proxyProtocol: proxy != 0, connectionBandwidth: bandwidth, dataPlane: dataPlane))
        }
        var whitelist: [WhitelistRecord] = []
        for try await (service, account) in try await connection.query(
            "SELECT service, account FROM whitelistEntry ORDER BY seq", logger: logger
        ).decode((String, String).self) {
            whitelist.append(WhitelistRecord(service: service, account: account))
        }
        var endpoints: [EndpointRecord] = []
        let endpointRows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(StoredRows.endpointColumns) FROM endpoint ORDER BY seq"), logger: logger)
        for try await (id, account, service, vpc, groups, zones) in endpointRows.decode((String, String, String, String, String, String).self) {
            endpoints.append(
                try StoredRows.endpoint(id: id, account: account, service: service, vpc: vpc, securityGroups: groups, zones: zones))
        }
        var connections: [ConnectionRecord] = []
        for try await (endpoint, state) in try await connection.query(
            "SELECT endpoint, state FROM connection ORDER BY seq", logger: logger
        ).decode((String, String).self) {
            connections.append(try StoredRows.connection(endpoint: endpoint, state: state))
        }
        var shifts: [ZonalShift] = []
        let shiftRows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(StoredRows.zonalShiftColumns) FROM zonalShift ORDER BY seq"), logger: logger)
        for try await (zone, reason, startedAt, expiresAt, drainAt) in shiftRows.decode((String, String, Int64, Int64?, Int64?).self) {
            shifts.append(ZonalShift(zone: zone, reason: reason, startedAt: startedAt, expiresAt: expiresAt, drainAt: drainAt))
        }
        return ControlState(
            services: services, whitelist: whitelist, endpoints: endpoints, connections: connections, zonalShifts: shifts)
    }
}
