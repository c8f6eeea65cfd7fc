/// The part of the region this host carries (`host:` in the config), when several ZoneLink
/// hosts share one catalog (`docs/scale.md`): the zones whose ENIs it opens, and the VPCs
/// whose namespaces it touches (ENI, NAT and DNS addresses). DNS answers still name every
/// zone's ENIs: the names are the region's, whichever host a client asks.
///
/// Without `host:` a host carries everything, as a single host does.
public struct HostPlacement: Hashable, Sendable {
    /// How the host names itself to the others (1 to 63 of `a-z`, `0-9`, `-`).
    public var id: String
    /// The zones whose ENIs this host opens; nil: every zone.
    public var zones: [String]?
    /// The VPCs whose namespaces this host changes; nil: every VPC.
    public var vpcs: [String]?

    public init(id: String, zones: [String]? = nil, vpcs: [String]? = nil) {
        self.id = id
        self.zones = zones
        self.vpcs = vpcs
    }

    public func carries(zone: String) -> Bool { zones.map { $0.contains(zone) } ?? true }
    public func carries(vpc: String) -> Bool { vpcs.map { $0.contains(vpc) } ?? true }
}

extension Catalog {
    /// Whether this host opens ENIs of `zone` in `vpc`'s namespace.
    public func carries(zone: String, vpc: String) -> Bool {
        host.map { $0.carries(zone: zone) && $0.carries(vpc: vpc) } ?? true
    }

    /// The ENIs this host opens, whose health it judges; another host judges the rest.
    public var carriedENIs: [ENIID] {
        endpoints.flatMap { endpoint in endpoint.eniIDs.filter { carries(zone: $0.zone, vpc: endpoint.vpc) } }
    }

    /// Whether this host adds addresses (NAT, DNS) in `vpc`'s namespace.
    public func carries(vpc: String) -> Bool {
        host.map { $0.carries(vpc: vpc) } ?? true
    }
}

/// What another host sharing the store last said (its heartbeat): the zones it carries, the
/// ENIs of them it finds unhealthy, and how long ago it said so, by the database's clock (so
/// the hosts' own clocks never matter).
public struct PeerBeat: Hashable, Sendable {
    public var host: String
    public var zones: [String]
    public var unhealthy: [ENIID]
    public var age: Duration

    public init(host: String, zones: [String], unhealthy: [ENIID], age: Duration) {
        self.host = host
        self.zones = zones
        self.unhealthy = unhealthy
        self.age = age
    }
}

extension Catalog {
    /// The ENIs DNS treats as unhealthy because of other hosts (`host.zones` placed the rest
    /// elsewhere): every ENI whose serving zone (its own, or its balancer's backup zone while
    /// `failover` moved it there) this host does not carry and no live host carries (its host
    /// has been silent longer than `lease`, or there never was one), and the ENIs a live host
    /// reports unhealthy in the zones it carries. Empty for a host that carries every zone.
    public func unhealthyElsewhere(peers: [PeerBeat], lease: Duration, failover: BalancerFailover = .allHome) -> Set<ENIID> {
        guard let host, host.zones != nil else { return [] }
        let live = peers.filter { $0.age <= lease && $0.host != host.id }
        let served = Set(live.flatMap(\.zones))
        var unhealthy: Set<ENIID> = []
        var servingZones: [ENIID: String] = [:]
        for endpoint in endpoints {
            for eni in endpoint.eniIDs {
                let zone = servingZone(of: eni, endpoint: endpoint, failover: failover)
                servingZones[eni] = zone
                if !host.carries(zone: zone) && !served.contains(zone) { unhealthy.insert(eni) }
            }
        }
        for peer in live {
            let zones = Set(peer.zones)
            for eni in peer.unhealthy {
                guard let zone = servingZones[eni], zones.contains(zone), !host.carries(zone: zone) else { continue }
                unhealthy.insert(eni)
            }
        }
        return unhealthy
    }
}
