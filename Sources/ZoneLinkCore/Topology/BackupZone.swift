/// A load balancer's backup zone (`loadBalancers[].backupZone`), decided in one pure place:
/// which zones are unavailable now, which load balancers therefore serve from their backup
/// zone, and what that moves: the zone DNS places their ENIs in, the host that opens those
/// ENIs, and the NAT addresses their flows leave from (`docs/gateway.md`, "Backup zone").
///
/// The rule: a balancer serves from its backup zone while its own zone is unavailable and the
/// backup zone is not; as soon as its own zone is available again, new flows go back to it.
public struct BalancerFailover: Hashable, Sendable {
    /// The load balancers serving from their backup zone now, by ID, with that zone.
    public var moved: [String: String]

    public init(moved: [String: String] = [:]) {
        self.moved = moved
    }

    /// Every balancer in its own zone.
    public static let allHome = BalancerFailover()
}

extension Catalog {
    /// The zones that cannot carry flows now: those shifted away, and, when zones are placed
    /// on hosts (`host.zones`), those neither this host nor a live other host carries.
    ///
    /// - Parameter liveElsewhere: the zones the other live hosts carry (their heartbeats within
    ///   the lease); nil when this host has not heard from the store yet, or places no zones:
    ///   then only shifts make a zone unavailable (a host that knows nothing of the others
    ///   assumes they are there, as DNS does, rather than taking over their balancers at start).
    public func unavailableZones(liveElsewhere: Set<String>?) -> Set<String> {
        var unavailable = shiftedZones
        if let host, let zones = host.zones, let liveElsewhere {
            let carried = Set(zones).union(liveElsewhere)
            unavailable.formUnion(knownZones.subtracting(carried))
        }
        return unavailable
    }

    /// The zones other live hosts carry, from their heartbeats: those younger than `lease`.
    public func liveZonesElsewhere(peers: [PeerBeat], lease: Duration) -> Set<String> {
        let me = host?.id
        return Set(peers.filter { $0.age <= lease && $0.host != me }.flatMap(\.zones))
    }

    /// Which balancers serve from their backup zone by the catalog alone (its shifts): what a
    /// host decides before it has heard from any other host, and all a single host needs.
    public var failoverByShifts: BalancerFailover {
        balancerFailover(unavailable: unavailableZones(liveElsewhere: nil))
    }

    /// Which balancers serve from their backup zone while `unavailable` zones are down: those
    /// whose own zone is unavailable and whose backup zone is not.
    public func balancerFailover(unavailable: Set<String>) -> BalancerFailover {
        var moved: [String: String] = [:]
        for balancer in loadBalancers {
            guard let backup = balancer.backupZone, unavailable.contains(balancer.zone), !unavailable.contains(backup) else { continue }
            moved[balancer.id] = backup
        }
        return BalancerFailover(moved: moved)
    }

    /// The zone an ENI lives in now: that of its service's balancer for the ENI's zone when the
    /// balancer serves from its backup zone, else the ENI's own. DNS places the ENI there for
    /// affinity and health, and the host carrying that zone opens it.
    public func servingZone(of eni: ENIID, endpoint: Endpoint, failover: BalancerFailover) -> String {
        guard !failover.moved.isEmpty, let service = service(endpoint.service),
              let resource = service.resources.first(where: { $0.zone == eni.zone }),
              let backup = failover.moved[resource.loadBalancer]
        else { return eni.zone }
        return backup
    }

    /// Every ENI that lives in another zone than its own now, with that zone (empty while no
    /// balancer serves from its backup zone).
    public func relocatedENIs(_ failover: BalancerFailover) -> [ENIID: String] {
        guard !failover.moved.isEmpty else { return [:] }
        var relocated: [ENIID: String] = [:]
        for endpoint in endpoints {
            for eni in endpoint.eniIDs {
                let zone = servingZone(of: eni, endpoint: endpoint, failover: failover)
                if zone != eni.zone { relocated[eni] = zone }
            }
        }
        return relocated
    }

    /// The NAT addresses a balancer's flows leave from now. Without a backup zone: all of them.
    /// With one, the addresses are split by where they lie: those in a vSwitch of the backup
    /// zone serve while the balancer is moved there, the others while it serves in its own zone
    /// (the validator requires at least one of each), so that two hosts never share a NAT address.
    public func natAddresses(of balancer: LoadBalancer, failover: BalancerFailover) -> [IPv4Address] {
        guard let backup = balancer.backupZone else { return balancer.natAddresses }
        let moved = failover.moved[balancer.id] != nil
        return balancer.natAddresses.filter { (zone(of: $0, inVPC: balancer.vpc) == backup) == moved }
    }

    /// The ENIs this host opens (and judges the health of) now: those whose serving zone it
    /// carries, in a VPC it carries.
    public func carriedENIs(_ failover: BalancerFailover) -> [ENIID] {
        endpoints.flatMap { endpoint in
            endpoint.eniIDs.filter { carries(zone: servingZone(of: $0, endpoint: endpoint, failover: failover), vpc: endpoint.vpc) }
        }
    }
}

/// Where a load balancer, or an ENI in front of one, serves from now, as `health` shows it to
/// an operator: at home, its zone shifted away with nowhere to move (DNS and new flows leave
/// it), or moved with its balancer to the backup zone (`servingZone`).
public struct ServingPlacement: Hashable, Sendable {
    public enum State: String, Hashable, Sendable {
        /// In its own zone, which is not shifted away.
        case home
        /// Its own zone is shifted away and it has not moved: it takes no new flow.
        case shiftedAway
        /// Its balancer serves from its backup zone (its zone shifted away, or carried by no
        /// live host): the host of `servingZone` carries it.
        case failedOver
    }

    public var state: State
    /// The zone it lives in now: the backup zone while failed over, else its own.
    public var servingZone: String

    public init(state: State, servingZone: String) {
        self.state = state
        self.servingZone = servingZone
    }
}

extension Catalog {
    /// Where `balancer` serves from under `failover` and the catalog's shifts.
    public func placement(of balancer: LoadBalancer, failover: BalancerFailover) -> ServingPlacement {
        if let backup = failover.moved[balancer.id] { return ServingPlacement(state: .failedOver, servingZone: backup) }
        return ServingPlacement(state: shiftedZones.contains(balancer.zone) ? .shiftedAway : .home, servingZone: balancer.zone)
    }

    /// Where an ENI of `endpoint` lives now: moved with its balancer, or in its own zone,
    /// shifted away or not.
    public func placement(of eni: ENIID, endpoint: Endpoint, failover: BalancerFailover) -> ServingPlacement {
        let zone = servingZone(of: eni, endpoint: endpoint, failover: failover)
        if zone != eni.zone { return ServingPlacement(state: .failedOver, servingZone: zone) }
        return ServingPlacement(state: shiftedZones.contains(eni.zone) ? .shiftedAway : .home, servingZone: eni.zone)
    }
}
