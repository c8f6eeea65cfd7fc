/// A zone taken out of service on purpose by the operator, for every service and VPC of the
/// region: DNS answers as if the zone's ENIs were unhealthy, load balancers send no new flow to
/// backends in the zone, and flows already open continue (or, with `drainAt`, are closed then).
///
/// Times are whole seconds since the Unix epoch, as stored and as the API shows them (RFC 3339):
/// a shift outlives restarts and is ended by its expiry even when the process was down then.
public struct ZonalShift: Hashable, Sendable, Codable {
    public var zone: String
    /// Why, for the people reading `zone shift list` and the health report ("" when not given).
    public var reason: String
    public var startedAt: Int64
    /// When the shift ends by itself; nil: it lasts until `zone shift end`.
    public var expiresAt: Int64?
    /// When open flows through the zone's ENIs or to its backends are closed; nil: they
    /// continue until they end.
    public var drainAt: Int64?

    public init(zone: String, reason: String = "", startedAt: Int64, expiresAt: Int64? = nil, drainAt: Int64? = nil) {
        self.zone = zone
        self.reason = reason
        self.startedAt = startedAt
        self.expiresAt = expiresAt
        self.drainAt = drainAt
    }

    /// True once `now` has reached the expiry.
    public func hasExpired(at now: Int64) -> Bool { expiresAt.map { now >= $0 } ?? false }
}

extension Catalog {
    /// The zones shifted away now.
    public var shiftedZones: Set<String> { Set(zonalShifts.map(\.zone)) }

    /// Every zone the region knows: those of vSwitches, load balancers and service resources.
    public var knownZones: Set<String> {
        var zones = Set(vpcs.flatMap { $0.vswitches.map(\.zone) })
        zones.formUnion(loadBalancers.map(\.zone))
        zones.formUnion(services.flatMap(\.zones))
        return zones
    }

    /// The zone of an address inside a VPC: that of the vSwitch holding it. A backend's zone
    /// is where its address lives, whatever load balancer sends to it; nil when no vSwitch
    /// of the VPC holds it (such a backend is never shifted away).
    public func zone(of address: IPv4Address, inVPC vpc: String) -> String? {
        self.vpc(vpc)?.vswitch(holding: address)?.zone
    }

    /// The zone an external load balancer's flows go to: that of its address's vSwitch, else
    /// the balancer's own; nil for a built-in one (its backends have zones of their own).
    public func externalZone(of balancer: LoadBalancer) -> String? {
        balancer.address.map { zone(of: $0, inVPC: balancer.vpc) ?? balancer.zone }
    }
}
