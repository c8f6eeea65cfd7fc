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
