import ZoneLinkCore

/// Which ENIs DNS treats as unhealthy: those the gateway's health checker reports, and every
/// ENI of a zone the operator shifted away (`ZonalShift`).
///
/// A zone of an endpoint is healthy when its ENI listener is up and its service resource has
/// a healthy backend (or is external), and the zone is not shifted away; DNS only reads this,
/// it never decides it.
public struct ZoneHealth: Sendable, Equatable {
    public var unhealthy: Set<ENIID>
    /// Zones shifted away: their ENIs answer as unhealthy ones do.
    public var shiftedZones: Set<String>

    public init(unhealthy: Set<ENIID> = [], shiftedZones: Set<String> = []) {
        self.unhealthy = unhealthy
        self.shiftedZones = shiftedZones
    }

    public static let allHealthy = ZoneHealth()

    /// Nothing unhealthy and nothing shifted: answers are the ones prepared per zone.
    public var isAllHealthy: Bool { unhealthy.isEmpty && shiftedZones.isEmpty }

    public func isHealthy(_ eni: ENIID) -> Bool {
        isAllHealthy || (!unhealthy.contains(eni) && !shiftedZones.contains(eni.zone))
    }
}
