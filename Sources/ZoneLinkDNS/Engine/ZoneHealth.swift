import ZoneLinkCore

/// Which ENIs DNS treats as unhealthy: those the gateway's health checker reports, and every
/// ENI of a zone the operator shifted away (`ZonalShift`); and where an ENI lives while its
/// load balancer serves from its backup zone (`BalancerFailover`).
///
/// A zone of an endpoint is healthy when its ENI listener is up and its service resource has
/// a healthy backend (or is external), and the zone is not shifted away; DNS only reads this,
/// it never decides it.
public struct ZoneHealth: Sendable, Equatable {
    public var unhealthy: Set<ENIID>
    /// Zones shifted away: their ENIs answer as unhealthy ones do.
    public var shiftedZones: Set<String>
    /// ENIs living in another zone than their own now (`Catalog.relocatedENIs`): affinity
    /// and shifts treat them as ENIs of that zone.
    public var relocated: [ENIID: String]

    public init(unhealthy: Set<ENIID> = [], shiftedZones: Set<String> = [], relocated: [ENIID: String] = [:]) {
        self.unhealthy = unhealthy
        self.shiftedZones = shiftedZones
        self.relocated = relocated
    }

    public static let allHealthy = ZoneHealth()

    /// Nothing unhealthy, shifted or moved: answers are the ones prepared per zone.
    public var isAllHealthy: Bool { unhealthy.isEmpty && shiftedZones.isEmpty && relocated.isEmpty }

    /// The zone `eni` lives in now: its own, or its balancer's backup zone while moved there.
    /// Asked per candidate ENI of an answer: no hashing while nothing is moved (the usual case).
    public func zone(of eni: ENIID) -> String { relocated.isEmpty ? eni.zone : relocated[eni] ?? eni.zone }

    public func isHealthy(_ eni: ENIID) -> Bool {
        isAllHealthy || (!unhealthy.contains(eni) && !shiftedZones.contains(zone(of: eni)))
    }
}
