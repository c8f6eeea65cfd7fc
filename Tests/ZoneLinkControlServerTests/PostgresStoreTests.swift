import Foundation
import Logging
import Synchronization
import Testing
import ZoneLinkControl
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkControlServer

/// A real PostgreSQL server per test (initdb in a temporary directory, a Unix socket only);
/// a test that cannot start one is cancelled (skipped) and says why.
func withPostgres(_ body: (PostgresServer) async throws -> Void) async throws {
    guard PostgresServer.installed else {
        FileHandle.standardError.write(Data("SKIPPED: \(PostgresServer.missing)\n".utf8))
        try Test.cancel("\(PostgresServer.missing)")
    }
    let server: PostgresServer
    do {
        server = try PostgresServer.create()
    } catch {
        FileHandle.standardError.write(Data("SKIPPED: PostgreSQL cannot start here: \(error)\n".utf8))
        try Test.cancel("PostgreSQL cannot start here: \(error)")
    }
    defer { server.remove() }
    try await body(server)
}

func postgresLocation(_ server: PostgresServer) throws -> PostgresLocation {
    guard case .postgres(let location) = try StoreLocation.parse(server.url) else { throw TestFailure("\(server.url) is not a PostgreSQL URL") }
    return location
}

let storeLogger = Logger(label: "test.store")

/// Waits for `condition` with a generous deadline (the machine may be busy): never a race
/// against the clock, only a bound on a hang.
func eventually(_ what: String, within seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
    guard try await waitUntil(within: seconds, every: .milliseconds(50), condition) else {
        throw TestFailure("not within \(seconds) s: \(what)")
    }
}

@Suite("PostgreSQL store: the same schema and rows as SQLite, shared by hosts", .serialized)
struct PostgresStoreTests {
    @Test func aNewDatabaseGetsTheSchemaAndKeepsCommittedRows() async throws {
        try await withPostgres { server in
            let store = PostgresStateStore(location: try postgresLocation(server), logger: storeLogger)
            try await store.open()
            #expect(try await store.loadState() == StoredState(state: ControlState(), revision: 0))
            #expect(server.psql("SELECT name FROM zonelink_schema ORDER BY version").output
                == StoreSchema.migrations.map { $0.name + "\n" }.joined())
            let (journal, state) = try StateStoreTests.seedJournal()
            var revision: Int64 = 0
            for changes in journal { revision = try await store.commit(changes, over: revision) }
            #expect(revision == Int64(journal.count))
            var capped = ServiceRecord(id: "epsrv-capped", account: accountB, resources: seedService.resources, connectionBandwidth: 100)
            capped.privateDomain = nil
            // Zonal shifts, with and without their optional times, replaced and ended.
            let shifts: [StateChange] = [
                .putService(capped),
                .putZonalShift(ZonalShift(zone: "eu-central-1a", reason: "rack 7", startedAt: 1_700_000_000, expiresAt: 1_700_007_200, drainAt: 1_700_000_300)),
                .putZonalShift(ZonalShift(zone: "eu-central-1b", startedAt: 1_700_000_001)),
                .putZonalShift(ZonalShift(zone: "eu-central-1a", reason: "rack 8", startedAt: 1_700_000_000)),
                .endZonalShift(zone: "eu-central-1b"),
            ]
            revision = try await store.commit(shifts, over: revision)
            #expect(try await store.loadState() == StoredState(state: state.applying(shifts), revision: revision))
            #expect(try await store.loadState().state.zonalShifts.map(\.reason) == ["rack 8"])
            // A second store (another host, or a restart) reads the same, and opening again migrates nothing.
            let other = PostgresStateStore(location: try postgresLocation(server), logger: storeLogger)
            try await other.open()
            #expect(try await other.loadState() == (try await store.loadState()))
            await store.close()
            await other.close()
        }
    }

    @Test func aDatabaseOfThePreviousVersionIsUpgradedWithItsRows() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let older = PostgresStateStore(location: location, logger: storeLogger, migrations: Array(StoreSchema.migrations.dropLast()))
            try await older.open()
            await older.close()
            // A row as the previous version wrote it.
            let inserted = server.psql("""
                INSERT INTO service (id, account, resources, autoAcceptConnections, zoneAffinity, privateDomain, proxyProtocol)
                VALUES ('epsrv-old', '\(accountB)', '[{"loadBalancer":"clb-1b","zone":"eu-central-1b"}]', 1, 0, NULL, 0)
                """)
            #expect(inserted.status == 0, "\(inserted.output)")
            let store = PostgresStateStore(location: location, logger: storeLogger)
            try await store.open()
            let loaded = try await store.loadState()
            #expect(loaded.revision == 0)
            #expect(loaded.state.services == [
                ServiceRecord(id: "epsrv-old", account: accountB, resources: seedService.resources, autoAcceptConnections: true)
            ])
            #expect(server.psql("SELECT count(*) FROM zonelink_schema").output == "\(StoreSchema.migrations.count)\n")
            await store.close()
        }
    }

    @Test func aSchemaNewerThanTheBinaryIsRefused() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let store = PostgresStateStore(location: location, logger: storeLogger)
            try await store.open()
            await store.close()
            let older = PostgresStateStore(location: location, logger: storeLogger, migrations: Array(StoreSchema.migrations.dropLast()))
            do {
                try await older.open()
                Issue.record("an older zonelink opened a newer schema")
            } catch let error as StoreSchemaTooNew {
                #expect(error.unknown == [StoreSchema.migrations.last!.name])
                #expect(error.description.contains("written by a newer zonelink"), "\(error)")
            }
            await older.close()
        }
    }

    @Test func twoHostsWritingOnTheSameRevisionGiveOneWinnerAndOneConflict() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let storeA = PostgresStateStore(location: location, logger: storeLogger)
            let storeB = PostgresStateStore(location: location, logger: storeLogger)
            try await storeA.open()
            try await storeB.open()
            let hostA = try await ControlService(base: configuration(), file: configFile, store: storeA, suffix: Suffixes().function)
            _ = try await hostA.perform { try $0.createService(seedService, by: provider) }
            _ = try await hostA.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
            _ = try await hostA.perform { try $0.createEndpoint(seedEndpoint, by: consumer) }
            let publishedB = Published()
            let hostB = try await ControlService(
                base: configuration(), file: configFile, store: storeB, suffix: Suffixes().function, publish: publishedB.publish)
            #expect(await hostB.current.state == (await hostA.current.state))
            // Both decide on the same revision: A accepts the endpoint, B deletes it.
            _ = try await hostA.perform { try $0.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider) }
            do {
                _ = try await hostB.perform { try $0.deleteEndpoint("ep-consumer1", by: consumer) }
                Issue.record("B's delete, decided on a state A had changed, was acknowledged")
            } catch let error as ControlError {
                #expect(error.code == "conflict" && error.httpStatus == 409, "\(error)")
                #expect(error.message.contains("another host changed the catalog"), "\(error)")
            }
            // Nothing of B's was written; B now serves A's change, through its data plane.
            let stored = try await storeA.loadState()
            #expect(stored.state.connection(of: "ep-consumer1") == .connected)
            #expect(stored.state.endpoint("ep-consumer1") != nil)
            #expect(await hostB.current.state == stored.state)
            #expect(await hostB.storeRevision == stored.revision)
            #expect(publishedB.all.last.map { $0.connection(of: $0.endpoints.first { $0.id == "ep-consumer1" }!) } == .connected)
            // Decided again on the new state, B's delete goes through.
            _ = try await hostB.perform { try $0.deleteEndpoint("ep-consumer1", by: consumer) }
            #expect(try await storeA.loadState().state.endpoint("ep-consumer1") == nil)
            await storeA.close()
            await storeB.close()
        }
    }

    @Test func aCommitOnOneHostReachesTheOtherHostsDataPlane() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let storeA = PostgresStateStore(location: location, logger: storeLogger)
            let storeB = PostgresStateStore(location: location, logger: storeLogger)
            try await storeA.open()
            try await storeB.open()
            let hostA = try await ControlService(base: configuration(), file: configFile, store: storeA, suffix: Suffixes().function)
            let publishedB = Published()
            let hostB = try await ControlService(
                base: configuration(), file: configFile, store: storeB, suffix: Suffixes().function, publish: publishedB.publish)
            // serve's follower: a catch-up that fails while the store is away is tried again.
            let follower = Task { try await StoreFollower(store: storeB, control: hostB, logger: storeLogger).run() }
            defer { follower.cancel() }
            defer { Task { await storeB.close() } }
            _ = try await hostA.perform { try $0.createService(seedService, by: provider) }
            try await eventually("host B serves the service host A created") {
                publishedB.all.last?.service("epsrv-frankfurt1") != nil
            }
            #expect(await hostB.current.state == (await hostA.current.state))
            #expect(await hostB.storeRevision == (await hostA.storeRevision))
            // B's own change reaches A's store and A catches up when told.
            _ = try await hostB.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
            #expect(try await hostA.catchUp() != nil)
            #expect(await hostA.current.state.whitelist == [WhitelistRecord(service: "epsrv-frankfurt1", account: accountA)])
            await storeA.close()
            await storeB.close()
        }
    }

    /// Mixed writes from two hosts at once, while each host's follower catches up and a reader
    /// reads beside them: each write is acknowledged or refused as a conflict, and the store
    /// holds exactly the acknowledged ones (no lost update, nothing half-applied). It once lost
    /// one create in sixty: the follower's read and the test's shared the store's connection,
    /// so one ran inside the other's older snapshot; the store's calls now take turns.
    @Test func concurrentWritesOnTwoHostsLoseNothing() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let stores = [PostgresStateStore(location: location, logger: storeLogger), PostgresStateStore(location: location, logger: storeLogger)]
            for store in stores { try await store.open() }
            var hosts: [ControlService] = []
            for store in stores {
                hosts.append(try await ControlService(base: configuration(), file: configFile, store: store, suffix: Suffixes().function))
            }
            let followers = zip(stores, hosts).map { store, host in
                Task { try await StoreFollower(store: store, control: host, logger: storeLogger).run() }
            }
            defer { for follower in followers { follower.cancel() } }
            final class Outcomes: Sendable {
                let acknowledged = Mutex<[String]>([])
                let failures = Mutex<[String]>([])
            }
            let outcomes = Outcomes()
            let both = hosts
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<60 {
                    let host = both[i % 2]
                    group.addTask {
                        let id = "epsrv-c\(i)"
                        let request = CreateServiceRequest(id: id, resources: seedService.resources)
                        for _ in 0..<40 {
                            do {
                                _ = try await host.perform { try $0.createService(request, by: provider) }
                                outcomes.acknowledged.withLock { $0.append(id) }
                                return
                            } catch let error as ControlError where error.code == "conflict" {
                                continue  // another host won this revision: decide again
                            } catch {
                                outcomes.failures.withLock { $0.append("\(id): \(error)") }
                                return
                            }
                        }
                    }
                }
                // A reader beside the writers, on host a's store.
                group.addTask {
                    for _ in 0..<20 { _ = try? await stores[0].loadState() }
                }
            }
            let acknowledged = outcomes.acknowledged.withLock { Set($0) }
            let stored = Set(try await stores[0].loadState().state.services.map(\.id))
            #expect(outcomes.failures.withLock { $0 }.isEmpty, "writes that failed otherwise than by a conflict")
            #expect(acknowledged.subtracting(stored).isEmpty, "acknowledged but not stored: \(acknowledged.subtracting(stored).sorted())")
            #expect(stored.subtracting(acknowledged).isEmpty, "stored but never acknowledged: \(stored.subtracting(acknowledged).sorted())")
            #expect(acknowledged.count > 0)
            for store in stores { await store.close() }
        }
    }

    /// Heartbeats: each host writes its own and reads the others', aged by the database.
    @Test func hostsReadEachOthersHeartbeats() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let a = PostgresStateStore(location: location, logger: storeLogger)
            let b = PostgresStateStore(location: location, logger: storeLogger)
            try await a.open()
            try await b.open()
            let sick = ENIID(endpoint: "ep-x", zone: "eu-central-1b")
            #expect(try await a.beat(host: "gw-a", zones: ["eu-central-1a"], unhealthy: []).isEmpty)
            let seenByB = try await b.beat(host: "gw-b", zones: ["eu-central-1b"], unhealthy: [sick])
            #expect(seenByB.map(\.host) == ["gw-a"] && seenByB.first?.zones == ["eu-central-1a"] && seenByB.first?.unhealthy == [])
            let seenByA = try await a.beat(host: "gw-a", zones: ["eu-central-1a"], unhealthy: [])
            #expect(seenByA.map(\.host) == ["gw-b"] && seenByA.first?.unhealthy == [sick])
            // Ages are the database's: a beat just written is young (generously: a busy machine).
            #expect(seenByA.allSatisfy { $0.age >= .zero && $0.age < .seconds(30) }, "\(seenByA)")
            await a.close()
            await b.close()
        }
    }

    /// postgres-nio asserts that a connection is closed before it is released: a store dropped
    /// without `close()` (a test that threw half way, a start that failed) must not crash.
    @Test func aStoreReleasedWithoutCloseClosesItsConnection() async throws {
        try await withPostgres { server in
            var store: PostgresStateStore? = PostgresStateStore(location: try postgresLocation(server), logger: storeLogger)
            try await store?.open()
            _ = try await store?.loadState()
            store = nil
            // Another store still gets in: the first one's connection went away cleanly.
            let other = PostgresStateStore(location: try postgresLocation(server), logger: storeLogger)
            try await other.open()
            #expect(try await other.loadState().revision == 0)
            await other.close()
        }
    }

    @Test func whileTheStoreIsDownWritesAnswer503AndResumeAfter() async throws {
        try await withPostgres { server in
            let location = try postgresLocation(server)
            let storeA = PostgresStateStore(location: location, logger: storeLogger)
            let storeB = PostgresStateStore(location: location, logger: storeLogger)
            try await storeA.open()
            try await storeB.open()
            let publishedA = Published()
            let hostA = try await ControlService(
                base: configuration(), file: configFile, store: storeA, suffix: Suffixes().function, publish: publishedA.publish)
            let publishedB = Published()
            let hostB = try await ControlService(
                base: configuration(), file: configFile, store: storeB, suffix: Suffixes().function, publish: publishedB.publish)
            // serve's follower: a catch-up that fails while the store is away is tried again.
            let follower = Task { try await StoreFollower(store: storeB, control: hostB, logger: storeLogger).run() }
            defer { follower.cancel() }
            defer { Task { await storeB.close() } }
            _ = try await hostA.perform { try $0.createService(seedService, by: provider) }
            let before = await hostA.current.state
            // Host B follows before the store goes away (the outage is what is tested here,
            // not a follower still connecting when it starts).
            try await eventually("host B serves the service before the outage") {
                await hostB.current.state == before
            }

            server.stop()
            do {
                _ = try await hostA.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
                Issue.record("a write was acknowledged while PostgreSQL was down")
            } catch let error as ControlError {
                #expect(error.code == "store_unavailable" && error.httpStatus == 503, "\(error)")
                #expect(error.message.contains("the PostgreSQL store postgres://postgres@/zonelink"), "\(error)")
                #expect(!error.message.contains("password"))
            }
            // The data plane got the old catalog back and the plane did not move.
            #expect(await hostA.current.state == before)
            #expect(publishedA.all.last?.service("epsrv-frankfurt1")?.whitelist == [])

            try server.start()
            try await eventually("a write goes through once PostgreSQL is back") {
                do {
                    _ = try await hostA.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
                    return true
                } catch let error as ControlError where error.code == "store_unavailable" {
                    return false
                }
            }
            try await eventually("host B converges after the outage") {
                await hostB.current.state == (await hostA.current.state)
            }
            #expect(publishedB.all.last?.service("epsrv-frankfurt1")?.whitelist == [accountA])
            await storeA.close()
            await storeB.close()
        }
    }
}

@Suite("Store schema: one migration list, upgrades and refusals (SQLite)")
struct StoreSchemaTests {
    @Test func anSQLiteFileOfThePreviousVersionIsUpgradedWithItsRows() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file(StateStore.fileName)
        let older = try StateStore(path: path, migrations: Array(StoreSchema.migrations.dropLast()))
        try older.execute("""
            INSERT INTO service (id, account, resources, autoAcceptConnections, zoneAffinity, privateDomain, proxyProtocol)
            VALUES ('epsrv-old', '\(accountB)', '[{"loadBalancer":"clb-1b","zone":"eu-central-1b"}]', 1, 0, NULL, 0)
            """)
        let store = try StateStore(path: path)
        let loaded = try await store.loadState()
        #expect(loaded.revision == 0)
        #expect(loaded.state.services == [
            ServiceRecord(id: "epsrv-old", account: accountB, resources: seedService.resources, autoAcceptConnections: true)
        ])
        // The new column is kept from now on.
        var capped = loaded.state.services[0]
        capped.connectionBandwidth = 50
        #expect(try await store.commit([.putService(capped)], over: 0) == 1)
        #expect(try store.load().services == [capped])
    }

    @Test func anSQLiteFileOfANewerVersionIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file(StateStore.fileName)
        _ = try StateStore(path: path)
        #expect(throws: StoreSchemaTooNew.self) {
            _ = try StateStore(path: path, migrations: Array(StoreSchema.migrations.dropLast()))
        }
    }

    @Test func aStaleRevisionIsAConflictInSQLiteToo() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore(path: directory.file(StateStore.fileName))
        let record = ServiceRecord(id: "epsrv-a", account: accountB, resources: seedService.resources)
        #expect(try await store.commit([.putService(record)], over: 0) == 1)
        await #expect(throws: StoreConflict.self) { try await store.commit([.deleteService(id: "epsrv-a")], over: 0) }
        #expect(try store.load().services == [record])
    }

    @Test func bothDialectsResolveEveryToken() {
        for migration in StoreSchema.migrations {
            for statement in migration.statements {
                for dialect in [StoreDialect.sqlite, .postgres] { #expect(!dialect.sql(statement).contains("{")) }
            }
        }
        #expect(StoreSchema.migrations.map(\.version) == Array(1...StoreSchema.migrations.count))
    }
}
