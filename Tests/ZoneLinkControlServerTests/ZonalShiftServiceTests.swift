import Foundation
import Synchronization
import Testing
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

/// Zonal shifts in the running control plane: stored, published, ended by their expiry.
@Suite("Zonal shifts: stored, published, expired")
struct ZonalShiftServiceTests {
    static func start(_ zone: String, expires: String? = nil) -> @Sendable (ControlPlane) throws -> Applied<(shift: ZonalShift, replaced: Bool)> {
        { try $0.startZonalShift(StartZonalShiftRequest(zone: zone, expiresIn: expires, force: true), by: .operator, now: ControlService.systemClock(), health: ObservedHealth()) }
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
