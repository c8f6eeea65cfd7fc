import Foundation
import Synchronization
import Testing
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

/// Zonal shifts in the running control plane: stored, published, ended by their expiry.
@Suite("Zonal shifts: stored, published, expired")
struct ZonalShiftServiceTests {
    static func start(_ zone: String, expires: String? = nil) -> @Sendable (ControlPlane) throws -> Applied<(shift: ZonalShift, replaced: Bool)> {
        { try $0.startZonalShift(StartZonalShiftRequest(zone: zone, expiresIn: expires, force: true), by: .operator, now: ControlService.systemClock(), health: ObservedHealth()) }
    }

    /// `health`'s rows after a shift: the shifted zone's balancer and ENIs read `shiftedAway`,
    /// serving from their own zone, and unhealthy; the others `home`.
    @Test func healthMarksWhatAShiftTookAway() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let service = try await ControlService(base: configuration(), file: configFile, store: StateStore.open(stateDirectory: directory.path))
        _ = try await service.perform { try $0.createService(seedService, by: provider) }
        _ = try await service.perform { try $0.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider) }
        _ = try await service.perform { try $0.createEndpoint(seedEndpoint, by: consumer) }
        _ = try await service.perform(Self.start("eu-central-1b"))
        let catalog = await service.catalog
        let rows = GatewayHealth.placements(of: catalog, unhealthy: [], failover: catalog.failoverByShifts)
        let eni = try #require(rows.zones.first { $0.endpoint == "ep-consumer1" })
        #expect(eni.state == .shiftedAway && eni.shiftedAway && !eni.healthy && eni.servingZone == "eu-central-1b", "\(eni)")
        let balancers = Dictionary(uniqueKeysWithValues: rows.loadBalancers.map { ($0.loadBalancer, $0) })
        #expect(balancers["clb-1b"]?.state == .shiftedAway && balancers["clb-1b"]?.servingZone == "eu-central-1b", "\(rows.loadBalancers)")
        #expect(rows.loadBalancers.filter { $0.zone != "eu-central-1b" }.allSatisfy { $0.state == .home }, "\(rows.loadBalancers)")
        _ = try await service.perform { try $0.endZonalShift("eu-central-1b", by: .operator) }
        let after = await service.catalog
        let back = GatewayHealth.placements(of: after, unhealthy: [], failover: after.failoverByShifts)
        #expect(back.zones.allSatisfy { $0.state == .home && $0.healthy } && back.loadBalancers.allSatisfy { $0.state == .home })
    }

    @Test func aShiftIsCommittedAndSurvivesARestart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let service = try await ControlService(base: configuration(), file: configFile, store: store)
        let started = try await service.perform(Self.start("eu-central-1a"))
        #expect(try store.load().zonalShifts == [started.shift])
        let restarted = try await ControlService(base: configuration(), file: configFile, store: StateStore.open(stateDirectory: directory.path))
        #expect(await restarted.catalog.zonalShifts == [started.shift])
        _ = try await restarted.perform { try $0.endZonalShift("eu-central-1a", by: .operator) }
        #expect(try store.load().zonalShifts.isEmpty)
    }

    @Test func anExpiredShiftEndsByItselfAndIsPublished() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        let published = Mutex<[Set<String>]>([])
        let service = try await ControlService(base: configuration(), file: configFile, store: store)
        await service.setPublish { catalog in published.withLock { $0.append(catalog.shiftedZones) } }
        _ = try await service.perform(Self.start("eu-central-1a", expires: "1s"))
        // Ended within a generous deadline, through the same path as any change.
        let deadline = ContinuousClock.now + .seconds(60)
        while !(await service.catalog.zonalShifts.isEmpty) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await service.catalog.zonalShifts.isEmpty)
        #expect(try store.load().zonalShifts.isEmpty)
        #expect(published.withLock { $0 } == [["eu-central-1a"], []])
    }

    @Test func aShiftThatExpiredWhileStoppedEndsAtStart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try StateStore.open(stateDirectory: directory.path)
        try await store.commit([.putZonalShift(ZonalShift(zone: "eu-central-1a", startedAt: 100, expiresAt: 200))])
        let service = try await ControlService(base: configuration(), file: configFile, store: store, clock: { 500 })
        #expect(await service.catalog.zonalShifts.isEmpty)
        #expect(try store.load().zonalShifts.isEmpty)
        let kept = ZonalShift(zone: "eu-central-1a", startedAt: 100, expiresAt: 900)
        try await store.commit([.putZonalShift(kept)])
        let later = try await ControlService(base: configuration(), file: configFile, store: store, clock: { 500 })
        #expect(await later.catalog.zonalShifts == [kept])
    }
}
