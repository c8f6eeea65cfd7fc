import Foundation
import Testing
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

@Suite("State store: SQLite rows of ControlState")
struct StateStoreTests {
    /// The seed's walkthrough as a journal of changes, and the state it leads to.
    static func seedJournal() throws -> (changes: [[StateChange]], state: ControlState) {
        var plane = try ControlPlane(base: configuration(), file: configFile, suffix: Suffixes().function)
        var changes: [[StateChange]] = []
        func step<V>(_ applied: Applied<V>) {
            changes.append(applied.changes)
            plane = applied.plane
        }
        step(try plane.createService(seedService, by: provider))
        step(try plane.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider))
        step(try plane.createEndpoint(seedEndpoint, by: consumer))
        step(try plane.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider))
        step(try plane.createService(CreateServiceRequest(id: "epsrv-second", resources: seedService.resources, privateDomain: "api.provider.example"), by: provider))
        step(try plane.updateService("epsrv-frankfurt1", UpdateServiceRequest(autoAcceptConnections: true), by: provider))
        return (changes, plane.state)
    }

    @Test func committedChangesLoadBackAsTheSameState() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (journal, state) = try Self.seedJournal()
        let store = try StateStore.open(stateDirectory: directory.path)
        #expect(try store.load() == ControlState())
        for changes in journal { try await store.commit(changes) }
        #expect(try store.load() == state)
        // A second store on the same file (as after a restart) reads the same.
        let reopened = try StateStore(path: directory.file(StateStore.fileName))
        #expect(try reopened.load() == state)
        #expect(FileManager.default.fileExists(atPath: directory.file("state.sqlite")))
    }

    @Test func everyKindOfChangeIsOneRowAndReplayingIsHarmless() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let first = ServiceRecord(id: "epsrv-a", account: accountB, resources: seedService.resources)
        let second = ServiceRecord(id: "epsrv-b", account: accountB, resources: seedService.resources, zoneAffinity: true)
        let entry = WhitelistRecord(service: "epsrv-a", account: accountA)
        let endpoint = EndpointRecord(
            id: "ep-a", account: accountA, service: "epsrv-a", vpc: "vpc-1", securityGroups: ["sg-1"],
            zones: [ENIRecord(zone: "eu-central-1b", vswitch: "vsw-1b", address: IPv4Address("10.10.2.9"))])
        var updated = first
        updated.autoAcceptConnections = true
        updated.privateDomain = "x.example"
        let journal: [StateChange] = [
            .putService(first), .putService(second), .addWhitelistEntry(entry), .addWhitelistEntry(entry),
            .putEndpoint(endpoint), .setConnection(ConnectionRecord(endpoint: "ep-a", state: .disconnected)),
            .setConnection(ConnectionRecord(endpoint: "ep-a", state: .rejected)),
            .setConnection(ConnectionRecord(endpoint: "ep-file", state: .connected)),
            // An upsert keeps the service's place (creation order).
            .putService(updated),
        ]
        try await store.commit(journal)
        try await store.commit(journal)
        let expected = ControlState(replaying: journal)
        #expect(try store.load() == expected)
        #expect(try store.load().services.map(\.id) == ["epsrv-a", "epsrv-b"])
        #expect(try store.load().services[0] == updated)

        let removals: [StateChange] = [
            .removeWhitelistEntry(entry), .deleteEndpoint(id: "ep-a"), .clearConnection(endpoint: "ep-a"), .deleteService(id: "epsrv-b"),
            .clearConnection(endpoint: "ep-missing"), .deleteService(id: "epsrv-missing"),
        ]
        try await store.commit(removals)
        #expect(try store.load() == expected.applying(removals))
        #expect(try store.load().connections == [ConnectionRecord(endpoint: "ep-file", state: .connected)])
    }

    @Test func aTransactionThatFailsLeavesNothing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (journal, _) = try Self.seedJournal()
        let store = try StateStore.open(stateDirectory: directory.path)
        try await store.commit(journal[0])
        try await store.commit(journal[1])
        let before = try store.load()
        // The endpoint's two rows: the first is written, then the transaction fails.
        let endpointChanges = journal[2]
        #expect(endpointChanges.count == 2)
        #expect(throws: TestFailure.self) {
            try store.commitNow(endpointChanges) { i in if i == 0 { throw TestFailure("cut short after the first row") } }
        }
        #expect(try store.load() == before)
        #expect(try StateStore(path: store.path).load() == before)
        // The same changes commit whole afterwards.
        try store.commitNow(endpointChanges)
        #expect(try store.load() == before.applying(endpointChanges))
    }

    /// v5: a service's data plane is kept; rows written before the column existed are relayed,
    /// and an old `last-applied.json` record without the field reads as relay too.
    @Test func dataPlaneIsKeptAndDefaultsToRelay() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let kernel = ServiceRecord(id: "epsrv-k", account: accountB, resources: seedService.resources, dataPlane: .kernel)
        let relay = ServiceRecord(id: "epsrv-r", account: accountB, resources: seedService.resources)
        try await store.commit([.putService(kernel), .putService(relay)])
        // As a v3 zonelink wrote it: no dataPlane in the INSERT; the column's default applies.
        try store.execute("""
            INSERT INTO service (id, account, resources, autoAcceptConnections, zoneAffinity, proxyProtocol)
            VALUES ('epsrv-old', '\(accountB)', '[]', 0, 0, 0)
            """)
        let loaded = try StateStore(path: directory.file(StateStore.fileName)).load().services
        #expect(loaded.map(\.id) == ["epsrv-k", "epsrv-r", "epsrv-old"])
        #expect(loaded.map(\.dataPlane) == [.kernel, .relay, .relay])
        let old = #"{"id":"epsrv-x","account":"2222222222222222","resources":[],"autoAcceptConnections":false,"zoneAffinity":false,"proxyProtocol":false}"#
        #expect(try JSONDecoder().decode(ServiceRecord.self, from: Data(old.utf8)).dataPlane == .relay)
        let encoded = try JSONEncoder().encode(kernel)
        #expect(try JSONDecoder().decode(ServiceRecord.self, from: encoded) == kernel)
    }

    @Test func theDatabaseIsWALWithFullSync() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let (mode, synchronous) = try store.pragmas()
        #expect(mode == "wal")
        #expect(synchronous == 2)  // FULL
    }
}

@Suite("State directory lock")
struct StateDirectoryLockTests {
    @Test func aSecondServerOnTheSameDirectoryIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var first: StateDirectoryLock? = try StateDirectoryLock(directory: directory.path)
        #expect(first != nil)
        #expect(throws: StateStoreError.self) { try StateDirectoryLock(directory: directory.path) }
        first = nil
        #expect(try StateDirectoryLock(directory: directory.path).path == directory.file("lock"))
    }
}
