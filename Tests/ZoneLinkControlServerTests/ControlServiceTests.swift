import Foundation
import Synchronization
import Testing
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

@Suite("Control service: decide, apply, commit, swap")
struct ControlServiceTests {
    @Test func aChangeIsAppliedThenCommittedThenAnswered() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let seenAtPublish = Mutex<[ControlState]>([])
        let service = try await ControlService(
            base: configuration(), file: configFile, store: store,
            publish: { _ in
                // What a crash right now would keep: not yet the change, nobody was told of it.
                let state = (try? StateStore(path: store.path).load()) ?? ControlState()
                seenAtPublish.withLock { $0.append(state) }
            })
        let view = try await service.perform { try $0.createService(seedService, by: provider) }
        #expect(view.id == "epsrv-frankfurt1")
        #expect(seenAtPublish.withLock { $0.map { $0.services.map(\.id) } } == [[]])
        #expect(await service.catalog.service("epsrv-frankfurt1") != nil)
        #expect(try store.load() == (await service.current.state))
    }

    /// Why the data plane did not take a catalog, as a test says it.
    struct BindFailed: Error, CustomStringConvertible {
        var description: String { "the gateway refused it: cannot listen on 10.10.2.4:80 (address in use)" }
    }

    @Test func aChangeTheDataPlaneRefusesIsNotCommitted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let refuse = Mutex(false)
        let published = Published()
        let service = try await ControlService(
            base: configuration(), file: configFile, store: store,
            publish: { catalog in
                if refuse.withLock({ $0 }) { throw BindFailed() }
                try await published.publish(catalog)
            })
        _ = try await service.perform { try $0.createService(seedService, by: provider) }
        let before = await service.current.state
        refuse.withLock { $0 = true }
        do {
            _ = try await service.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
            Issue.record("a refused change was acknowledged")
        } catch let error as ControlError {
            #expect(error.code == "not_applied" && error.httpStatus == 409)
            #expect(error.message.contains("cannot listen on 10.10.2.4:80"), "\(error)")
        }
        #expect(await service.current.state == before)
        #expect(try store.load() == before)
        #expect(published.count == 1)
        // Once the data plane takes it, the same change goes through.
        refuse.withLock { $0 = false }
        _ = try await service.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
        #expect(try store.load().whitelist.count == 1)
    }

    @Test func aCatalogProblemFoundByTheDataPlaneIsAnIssueOfTheRequest() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let service = try await ControlService(
            base: configuration(), file: configFile, store: StateStore.open(stateDirectory: directory.path),
            publish: { catalog in
                guard catalog.services.isEmpty else {
                    throw ConfigError(file: configFile, issues: [ConfigIssue("endpointServices[0].privateDomain", "overlaps the static zone x", hint: "h")])
                }
            })
        do {
            _ = try await service.perform { try $0.createService(seedService, by: provider) }
            Issue.record("accepted")
        } catch let error as ControlError {
            guard case .invalid(let issues) = error else { Issue.record("\(error)"); return }
            // The API's object is named by its ID, not by its index in the merged file.
            #expect(issues.map(\.keyPath) == ["endpointServices[epsrv-frankfurt1].privateDomain"], "\(issues)")
        }
        #expect(await service.catalog.services.isEmpty)
    }

    @Test func aRefusedChangeChangesNothing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let published = Published()
        let service = try await ControlService(base: configuration(), file: configFile, store: store, publish: published.publish)
        _ = try await service.perform { try $0.createService(seedService, by: provider) }
        let serial = await service.catalog.serial
        await #expect(throws: ControlError.self) {
            try await service.perform { try $0.addToWhitelist(accountC, of: "epsrv-frankfurt1", by: consumer) }
        }
        #expect(published.count == 1)
        #expect(await service.catalog.serial == serial)
        #expect(try store.load().whitelist.isEmpty)
    }

    @Test func reopeningTheStoreRestoresTheState() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = try await ControlService(
            base: configuration(), file: configFile, store: StateStore.open(stateDirectory: directory.path), publish: { _ in })
        _ = try await first.perform { try $0.createService(seedService, by: provider) }
        _ = try await first.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
        _ = try await first.perform { try $0.createEndpoint(seedEndpoint, by: consumer) }
        _ = try await first.perform { try $0.accept(service: "epsrv-frankfurt1", endpoint: "ep-consumer1", by: provider) }
        let before = await first.current

        let second = try await ControlService(
            base: configuration(), file: configFile, store: StateStore.open(stateDirectory: directory.path), publish: { _ in })
        let after = await second.current
        #expect(after.state == before.state)
        #expect(after.catalog.endpoints == before.catalog.endpoints)
        #expect(after.catalog.services == before.catalog.services)
        #expect(try after.endpoint("ep-consumer1", by: consumer).connection == .connected)
        #expect(try after.endpoint("ep-consumer1", by: consumer).placement?.enis.map(\.address) == ["10.10.2.4"])
    }

    @Test func startAndReloadRemoveOrphansAndCommitTheRemoval() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let published = Published()
        // The file declares epsrv-file; B whitelists C on it through the API.
        let service = try await ControlService(
            base: configuration(infrastructureYAML + fileServiceYAML), file: configFile, store: store, publish: published.publish)
        _ = try await service.perform { try $0.addToWhitelist(accountC, of: "epsrv-file", by: provider) }
        #expect(try store.load().whitelist == [WhitelistRecord(service: "epsrv-file", account: accountC)])

        // The file drops the service: the reload removes the orphaned entry, on disk too.
        let catalog = try await service.reload(base: configuration(), file: configFile)
        #expect(catalog.service("epsrv-file") == nil)
        #expect(published.all.last?.serial == catalog.serial)
        #expect(try store.load().whitelist.isEmpty)

        // An invalid reload keeps the running plane.
        var broken = try configuration()
        broken.vpcs.removeAll()
        _ = try await service.perform { try $0.createService(seedService, by: provider) }
        let running = await service.current.state
        await #expect(throws: ConfigError.self) { try await service.reload(base: broken, file: configFile) }
        #expect(await service.current.state == running)

        // Orphans found at start are removed too.
        try await store.commit([.addWhitelistEntry(WhitelistRecord(service: "epsrv-gone", account: accountA))])
        let restarted = try await ControlService(base: configuration(), file: configFile, store: store, publish: { _ in })
        #expect(await restarted.current.state.whitelist.isEmpty)
        #expect(try store.load().whitelist.isEmpty)
    }

    @Test func aStateThatNoLongerFitsTheFileIsRefusedAtStart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let service = try await ControlService(base: configuration(), file: configFile, store: store, publish: { _ in })
        _ = try await service.perform { try $0.createService(seedService, by: provider) }
        _ = try await service.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
        _ = try await service.perform { try $0.createEndpoint(seedEndpoint, by: consumer) }
        var withoutVPC1 = try configuration()
        withoutVPC1.vpcs.removeAll { $0.id == "vpc-1" }
        do {
            _ = try await ControlService(base: withoutVPC1, file: configFile, store: store, publish: { _ in })
            Issue.record("expected a ConfigError")
        } catch let error as ConfigError {
            #expect(error.issues.contains { $0.keyPath.hasPrefix("endpoints[ep-consumer1]") }, "\(error)")
        }
    }

    /// 200 concurrent writes: each acknowledged one is on disk when the store is reopened, and
    /// catalogs are published in commit order.
    @Test func twoHundredConcurrentWritesAreAllOnDisk() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let published = Published()
        let service = try await ControlService(base: configuration(), file: configFile, store: store, publish: published.publish)
        _ = try await service.perform { try $0.createService(seedService, by: provider) }
        _ = try await service.perform {
            try $0.createService(CreateServiceRequest(id: "epsrv-auto", resources: seedService.resources, autoAcceptConnections: true), by: provider)
        }
        _ = try await service.perform { try $0.addToWhitelist(accountA, of: "epsrv-auto", by: provider) }

        // 150 whitelist adds (distinct accounts), 30 of them removed again, and 20 endpoints.
        let accounts = (0..<150).map { String(format: "9%015ld", $0) }
        let acknowledged = Acknowledged()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for account in accounts {
                group.addTask {
                    _ = try await service.perform { try $0.addToWhitelist(account, of: "epsrv-frankfurt1", by: provider) }
                    acknowledged.append("whitelist \(account)")
                }
            }
            for i in 0..<20 {
                group.addTask {
                    let request = CreateEndpointRequest(
                        id: "ep-load\(i)", service: "epsrv-auto", vpc: "vpc-1",
                        zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")])
                    _ = try await service.perform { try $0.createEndpoint(request, by: consumer) }
                    acknowledged.append("endpoint ep-load\(i)")
                }
            }
            try await group.waitForAll()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for account in accounts.prefix(30) {
                group.addTask {
                    _ = try await service.perform { try $0.removeFromWhitelist(account, of: "epsrv-frankfurt1", by: provider) }
                    acknowledged.append("unlisted \(account)")
                }
            }
            try await group.waitForAll()
        }
        #expect(acknowledged.count == 200)

        let reopened = try StateStore(path: store.path).load()
        let listed = Set(reopened.whitelist.filter { $0.service == "epsrv-frankfurt1" }.map(\.account))
        #expect(listed == Set(accounts.dropFirst(30)))
        #expect(Set(reopened.endpoints.map(\.id)) == Set((0..<20).map { "ep-load\($0)" }))
        #expect(reopened.connections.count == 20 && reopened.connections.allSatisfy { $0.state == .connected })
        // Every endpoint got an address of its own.
        let addresses = reopened.endpoints.compactMap { $0.zones.first?.address }
        #expect(Set(addresses).count == 20)
        #expect(reopened == (await service.current.state))
        // One catalog per change, serials rising in the order they were published.
        let serials = published.all.map(\.serial)
        #expect(serials.count == 203)
        #expect(serials == serials.sorted() && Set(serials).count == serials.count)
    }
}

/// What was acknowledged, in the order it was.
final class Acknowledged: Sendable {
    private let items = Mutex<[String]>([])
    func append(_ item: String) { items.withLock { $0.append(item) } }
    var count: Int { items.withLock { $0.count } }
}
