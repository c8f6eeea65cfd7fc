import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

/// `zone shift start|list|end`: the operator's decisions about zones, without I/O.
@Suite("Zonal shifts: start, end, expiry, refusals")
struct ZonalShiftTests {
    /// The seed, with the service offered in zones a (clb-1a) and b (clb-1b); both load
    /// balancers send to 192.168.24.200 and .12, which vsw-2b (zone b) holds.
    static func world() throws -> ControlPlane {
        var service = seedService
        service.resources.append(ServiceResourceSpec(zone: "eu-central-1a", loadBalancer: "clb-1a"))
        return try plane().createService(service, by: provider).plane
    }

    /// Every backend of the seed's load balancers passes its checks.
    static let allHealthy = ObservedHealth(healthyBackends: [
        .init(loadBalancer: "clb-1b", listener: 0, address: IPv4Address("192.168.24.200")!),
        .init(loadBalancer: "clb-1b", listener: 0, address: IPv4Address("192.168.24.12")!),
        .init(loadBalancer: "clb-1a", listener: 0, address: IPv4Address("192.168.24.200")!),
    ])

    func start(_ p: ControlPlane, _ zone: String, expires: String? = nil, drain: String? = nil, force: Bool = false, now: Int64 = 1000,
               by principal: Principal = .operator) throws -> Applied<(shift: ZonalShift, replaced: Bool)> {
        try p.startZonalShift(
            StartZonalShiftRequest(zone: zone, expiresIn: expires, reason: "rack 7", drainAfter: drain, force: force),
            by: principal, now: now, health: Self.allHealthy)
    }

    @Test func aShiftJoinsTheCatalogWithItsTimes() throws {
        let applied = try start(Self.world(), "eu-central-1a", expires: "2h", drain: "5m")
        #expect(applied.value.shift == ZonalShift(zone: "eu-central-1a", reason: "rack 7", startedAt: 1000, expiresAt: 8200, drainAt: 1300))
        #expect(!applied.value.replaced)
        #expect(applied.catalog.shiftedZones == ["eu-central-1a"])
        #expect(applied.changes == [.putZonalShift(applied.value.shift)])
        #expect(try applied.plane.zonalShifts(by: .operator) == [applied.value.shift])
    }

    @Test func startingAgainChangesExpiryAndKeepsTheStart() throws {
        let first = try start(Self.world(), "eu-central-1a", expires: "1h")
        let again = try start(first.plane, "eu-central-1a", now: 2000)
        #expect(again.value.replaced && again.value.shift.startedAt == 1000 && again.value.shift.expiresAt == nil)
        #expect(again.state.zonalShifts.count == 1)
    }

    @Test func endingRemovesItAndAnUnknownOneIsNotFound() throws {
        let shifted = try start(Self.world(), "eu-central-1a").plane
        let ended = try shifted.endZonalShift("eu-central-1a", by: .operator)
        #expect(ended.catalog.zonalShifts.isEmpty && ended.changes == [.endZonalShift(zone: "eu-central-1a")])
        guard case .notFound(let message) = error({ try ended.plane.endZonalShift("eu-central-1a", by: .operator) }) else {
            Issue.record("ending a zone that is not shifted must be not found")
            return
        }
        #expect(message.contains("no zone is shifted away"))
    }

    @Test func expiredShiftsEndAndTheOthersStay() throws {
        var p = try start(Self.world(), "eu-central-1a", expires: "10s").plane
        p = try start(p, "eu-central-1c", force: true).plane
        #expect(try p.endingExpiredShifts(now: 1009).changes.isEmpty)
        let expired = try p.endingExpiredShifts(now: 1010)
        #expect(expired.value.map(\.zone) == ["eu-central-1a"])
        #expect(expired.catalog.shiftedZones == ["eu-central-1c"])
    }

    @Test func onlyTheOperatorShifts() throws {
        let p = try Self.world()
        for principal in [provider, consumer, stranger] {
            #expect(error({ try start(p, "eu-central-1a", by: principal) })?.code == "forbidden")
            #expect(error({ try p.zonalShifts(by: principal) })?.code == "forbidden")
            #expect(error({ try p.endZonalShift("eu-central-1a", by: principal) })?.code == "forbidden")
        }
    }

    @Test(arguments: [
        ("eu-central-1z", nil, nil, "zone"), ("", nil, nil, "zone"),
        ("eu-central-1a", "10", nil, "expiresIn"), ("eu-central-1a", "0s", nil, "expiresIn"), ("eu-central-1a", "-5m", nil, "expiresIn"),
        ("eu-central-1a", "500ms", nil, "expiresIn"), ("eu-central-1a", "169h", nil, "expiresIn"), ("eu-central-1a", "2d", nil, "expiresIn"),
        ("eu-central-1a", nil, "25h", "drainAfter"), ("eu-central-1a", nil, "soon", "drainAfter"),
    ] as [(String, String?, String?, String)])
    func badInputIsRefusedByField(zone: String, expires: String?, drain: String?, field: String) throws {
        let p = try Self.world()
        guard case .invalid(let issues) = error({ try start(p, zone, expires: expires, drain: drain) }) else {
            Issue.record("\(zone) \(String(describing: expires)) \(String(describing: drain)): expected invalid")
            return
        }
        #expect(issues.map(\.keyPath) == [field])
    }

    @Test func reasonsAreOneShortLine() throws {
        let p = try Self.world()
        for reason in [String(repeating: "x", count: 257), "two\nlines"] {
            guard case .invalid(let issues) = error({
                try p.startZonalShift(StartZonalShiftRequest(zone: "eu-central-1a", reason: reason), by: .operator, now: 1, health: Self.allHealthy)
            }) else {
                Issue.record("reason \(reason.prefix(10)): expected invalid")
                continue
            }
            #expect(issues.map(\.keyPath) == ["reason"])
        }
    }

    @Test func shiftingTheLastHealthyZoneIsRefusedUnlessForced() throws {
        let p = try Self.world()
        // Every backend lives in zone b: shifting it away leaves the service nothing.
        guard case .conflict(let message) = error({ try start(p, "eu-central-1b") }) else {
            Issue.record("shifting zone b away must be refused")
            return
        }
        #expect(message.contains("epsrv-frankfurt1") && message.contains("force"))
        #expect(try start(p, "eu-central-1b", force: true).catalog.shiftedZones == ["eu-central-1b"])
        // Zone a's shift leaves zone b serving.
        let a = try start(p, "eu-central-1a").plane
        #expect(error({ try start(a, "eu-central-1b") })?.code == "conflict")
    }

    @Test func aServiceAlreadyDarkDoesNotBlockAShift() throws {
        // No backend passes its checks: nothing serves now, so nothing goes dark.
        let p = try Self.world()
        let applied = try p.startZonalShift(StartZonalShiftRequest(zone: "eu-central-1b"), by: .operator, now: 1, health: ObservedHealth())
        #expect(applied.catalog.shiftedZones == ["eu-central-1b"])
    }

    @Test func servingZonesFollowBackendZonesAndHealth() throws {
        let catalog = try Self.world().catalog
        let service = try #require(catalog.service("epsrv-frankfurt1"))
        #expect(Set(ShiftImpact.servingZones(of: service, in: catalog, shifted: [], health: Self.allHealthy)) == ["eu-central-1a", "eu-central-1b"])
        #expect(ShiftImpact.servingZones(of: service, in: catalog, shifted: ["eu-central-1a"], health: Self.allHealthy) == ["eu-central-1b"])
        #expect(ShiftImpact.servingZones(of: service, in: catalog, shifted: ["eu-central-1b"], health: Self.allHealthy).isEmpty)
        let onlyA = ObservedHealth(healthyBackends: [.init(loadBalancer: "clb-1a", listener: 0, address: IPv4Address("192.168.24.200")!)])
        #expect(ShiftImpact.servingZones(of: service, in: catalog, shifted: [], health: onlyA) == ["eu-central-1a"])
    }

    @Test func stateChangesRoundTripAsJSON() throws {
        let shift = ZonalShift(zone: "eu-central-1a", reason: "r", startedAt: 5, expiresAt: 9, drainAt: nil)
        let journal: [StateChange] = [.putZonalShift(shift), .endZonalShift(zone: "eu-central-1a")]
        let decoded = try JSONDecoder().decode([StateChange].self, from: JSONEncoder().encode(journal))
        #expect(decoded == journal)
        #expect(ControlState(replaying: [.putZonalShift(shift)]).zonalShifts == [shift])
        #expect(ControlState(replaying: journal).zonalShifts.isEmpty)
    }
}
