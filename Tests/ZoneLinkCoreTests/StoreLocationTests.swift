import Testing
@testable import ZoneLinkCore

/// `serve --store` and `control.store`: sqlite, or a PostgreSQL URL read into its parts, and
/// every malformed URL refused with advice (and never echoed back with its password).
@Suite("Store location: sqlite or a postgres:// URL")
struct StoreLocationTests {
    @Test func sqliteIsTheDefaultAndCanBeNamed() throws {
        #expect(ControlSettings().store == .sqlite)
        #expect(try StoreLocation.parse("sqlite") == .sqlite)
    }

    @Test func aURLIsReadIntoItsParts() throws {
        #expect(try StoreLocation.parse("postgres://zl:s%40cret@db.internal:6543/catalog") == .postgres(PostgresLocation(
            host: "db.internal", socketDirectory: nil, port: 6543, user: "zl", password: "s@cret", database: "catalog")))
        #expect(try StoreLocation.parse("postgresql://zl@10.0.0.5/zl?sslmode=disable") == .postgres(PostgresLocation(
            host: "10.0.0.5", socketDirectory: nil, port: 5432, user: "zl", password: nil, database: "zl")))
        // The database defaults to the user's name, as libpq's does.
        guard case .postgres(let socket) = try StoreLocation.parse("postgres://postgres@:5433/?host=/run/postgresql") else {
            Issue.record("not a PostgreSQL location")
            return
        }
        #expect(socket.socketPath == "/run/postgresql/.s.PGSQL.5433")
        #expect(socket.database == "postgres")
        #expect(socket.host == nil)
    }

    @Test func theDescriptionLeavesThePasswordOut() throws {
        let location = try StoreLocation.parse("postgres://zl:hunter2@db:5432/catalog")
        #expect(location.description == "postgres://zl@db:5432/catalog")
        #expect(!"\(location)".contains("hunter2"))
    }

    @Test(arguments: [
        ("mysql://zl:hunter2@db/x", "neither sqlite nor a postgres:// URL"),
        ("postgres://db:5432", "names no database"),
        ("postgres://db/x", "names no user"),
        ("postgres://zl@db:99999/x", "port"),
        ("postgres://zl@db:abc/x", "port"),
        ("postgres://zl@/x", "names no host"),
        ("postgres://zl@db/x?host=/run/pg", "both a host and a socket directory"),
        ("postgres://zl@/x?host=run", "not a socket directory"),
        ("postgres://zl@db/x?sslmode=require", "sslmode=require is not supported"),
        ("postgres://zl@db/x?application_name=z", "unknown parameter"),
        ("postgres://zl@db/x%zz", "malformed %-escape"),
        ("postgres://zl@d b/x", "not a host name"),
        ("postgres://zl@db/" + String(repeating: "x", count: 3000), "longer than 2048 bytes"),
    ])
    func aBadLocationIsRefusedWithAdvice(_ text: String, _ problem: String) {
        #expect {
            _ = try StoreLocation.parse(text)
        } throws: { error in
            guard let error = error as? StoreLocationError else { return false }
            return error.problem.contains(problem) && !error.description.contains("hunter2") && !error.hint.isEmpty
        }
    }

    @Test func theConfigKeyIsReadAndCheckedWithItsPath() throws {
        let good = baseConfig.replacingOccurrences(of: "accounts:\n", with: "control: {store: \"postgres://zl@db/catalog\"}\naccounts:\n")
        let catalog = try Catalog(configuration: Configuration.parse(yaml: good, file: "test.yaml"), file: "test.yaml")
        #expect(catalog.control.store == .postgres(PostgresLocation(
            host: "db", socketDirectory: nil, port: 5432, user: "zl", password: nil, database: "catalog")))
        let bad = baseConfig.replacingOccurrences(of: "accounts:\n", with: "control: {store: \"postgres://db/catalog\"}\naccounts:\n")
        let found = issues(bad)
        #expect(found.contains { $0.keyPath == "control.store" && $0.problem.contains("names no user") }, "\(found)")
    }
}
