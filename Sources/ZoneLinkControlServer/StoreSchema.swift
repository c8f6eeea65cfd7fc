import Foundation

/// The state store's schema: one list of versioned migrations that both stores (SQLite and
/// PostgreSQL) run in order, so a database of either kind has the same tables and columns.
///
/// A migration is a list of single SQL statements (PostgreSQL's extended protocol runs one
/// statement per query). The few places where the two SQL dialects differ are written as
/// `StoreDialect` tokens and resolved by `StoreDialect.sql(_:)`, here and nowhere else.
///
/// Adding a table or a column is one new entry at the end of `migrations`; an entry, once
/// released, is never edited: a database records the migrations it ran by name, and a
/// binary refuses to start on a database that ran one it does not know (it is newer).
public enum StoreSchema {
    public struct Migration: Sendable {
        /// Also the migration's version: 1 for the first entry, and so on.
        public let version: Int
        /// The name a database records (SQLite's `grdb_migrations`, PostgreSQL's
        /// `zonelink_schema`); never changed once released.
        public let name: String
        /// Statements with `StoreDialect` tokens.
        public let statements: [String]
    }

    public static let migrations: [Migration] = [
        Migration(version: 1, name: "v1: services, whitelist, endpoints, connections", statements: [
            """
            CREATE TABLE service (
                seq {serial},
                id TEXT NOT NULL UNIQUE,
                account TEXT NOT NULL,
                resources TEXT NOT NULL,
                autoAcceptConnections INTEGER NOT NULL,
                zoneAffinity INTEGER NOT NULL,
                privateDomain TEXT,
                proxyProtocol INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE whitelistEntry (
                seq {serial},
                service TEXT NOT NULL,
                account TEXT NOT NULL,
                UNIQUE (service, account)
            )
            """,
            """
            CREATE TABLE endpoint (
                seq {serial},
                id TEXT NOT NULL UNIQUE,
                account TEXT NOT NULL,
                service TEXT NOT NULL,
                vpc TEXT NOT NULL,
                securityGroups TEXT NOT NULL,
                zones TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE connection (
                seq {serial},
                endpoint TEXT NOT NULL UNIQUE,
                state TEXT NOT NULL CHECK (state IN ('Disconnected', 'Connected', 'Rejected'))
            )
            """,
        ]),
        // The store's revision: every commit raises it by one, and a commit names the revision
        // it was decided on, so of two hosts deciding on the same revision one wins and the
        // other gets a conflict (never a lost update). A service's bandwidth cap was kept in
        // memory only before: it gets its column.
        Migration(version: 2, name: "v2: revision, service connectionBandwidth", statements: [
            "CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL)",
            "INSERT INTO revision (id, value) VALUES (1, 0)",
            "ALTER TABLE service ADD COLUMN connectionBandwidth INTEGER",
        ]),
        // The operator's zonal shifts (`ZonalShift`); times are seconds since the Unix epoch.
        Migration(version: 3, name: "v3: zonal shifts", statements: [
            """
            CREATE TABLE zonalShift (
                seq {serial},
                zone TEXT NOT NULL UNIQUE,
                reason TEXT NOT NULL,
                startedAt BIGINT NOT NULL,
                expiresAt BIGINT,
                drainAt BIGINT
            )
            """,
        ]),
        // Each host's heartbeat when several share a PostgreSQL store (`HostHeartbeat`): the
        // zones it carries and the ENIs of them it finds unhealthy (JSON lists), and when it
        // last wrote, in milliseconds since the epoch by the database's clock.
        Migration(version: 4, name: "v4: host heartbeats", statements: [
            """
            CREATE TABLE hostHeartbeat (
                host TEXT PRIMARY KEY,
                zones TEXT NOT NULL,
                unhealthy TEXT NOT NULL,
                beatAt BIGINT NOT NULL
            )
            """,
        ]),
        // What carries a service's flows (`ServiceDataPlane`): rows written before are relayed.
        Migration(version: 5, name: "v5: service dataPlane", statements: [
            "ALTER TABLE service ADD COLUMN dataPlane TEXT NOT NULL DEFAULT 'relay' CHECK (dataPlane IN ('relay', 'kernel'))",
        ]),
    ]

    /// The version this binary writes: the last migration's.
    public static var version: Int { migrations.last?.version ?? 0 }
}

/// The SQL dialect a store speaks; the only place the two differ.
public enum StoreDialect: Sendable {
    case sqlite
    case postgres

    /// `statement` with its tokens resolved: `{serial}` is an auto-increasing primary key
    /// that keeps rows in creation order.
    public func sql(_ statement: String) -> String {
        switch self {
        case .sqlite: statement.replacingOccurrences(of: "{serial}", with: "INTEGER PRIMARY KEY AUTOINCREMENT")
        case .postgres: statement.replacingOccurrences(of: "{serial}", with: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        }
    }
}

/// A database whose schema is newer than this binary: it refuses to open it rather than
/// write rows an older schema does not describe.
public struct StoreSchemaTooNew: Error, CustomStringConvertible, Sendable {
    public let store: String
    public let unknown: [String]
    public var description: String {
        "\(store) has schema migrations this zonelink does not know (\(unknown.joined(separator: ", "))): "
            + "it was written by a newer zonelink (this one knows up to version \(StoreSchema.version)); upgrade this host's zonelink"
    }
}
