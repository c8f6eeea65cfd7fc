import ZoneLinkCore

/// Which ENIs are unhealthy, as the gateway's health checker reports them.
///
/// A zone of an endpoint is healthy when its ENI listener is up and its service resource has
/// a healthy backend (or is external); DNS only reads this, it never decides it.
public struct ZoneHealth: Sendable, Equatable {
    public var unhealthy: Set<ENIID>

    public init(unhealthy: Set<ENIID> = []) { self.unhealthy = unhealthy }

    public static let allHealthy = ZoneHealth()

    public func isHealthy(_ eni: ENIID) -> Bool { unhealthy.isEmpty || !unhealthy.contains(eni) }
}
