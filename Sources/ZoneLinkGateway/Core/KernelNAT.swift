import ZoneLinkCore

/// The kernel data path's decisions, pure: which veth pair links which VPC, which marks and
/// conntrack zones tell flows apart, and the nftables table that carries the flows of services
/// with `dataPlane: kernel`. The shell (`KernelDataPath`) creates the links and hands the text
/// to libnftables; nothing here touches the system, so every rule is tested as text.
///
/// How a flow travels (`docs/gateway.md`, "Kernel data plane"): a client in a consumer VPC's
/// namespace sends to an ENI address, routed over the VPC's veth to the gateway namespace;
/// there the flow gets the VPC's conntrack zone (original direction), is admitted by its
/// security groups (which mark it: consumer link and load balancer slot), DNATed to a healthy
/// backend picked by weight, routed by mark to the provider's veth and SNATed to the load
/// balancer's NAT address. Replies are un-NATed by conntrack and routed back by the consumer
/// link in the mark, so two VPCs with the same client and ENI addresses never meet.
public enum KernelNAT {
    /// The nftables table ZoneLink owns in its gateway namespace; nothing else is touched.
    public static let table = "zonelink"
    /// The VPC side of every link, in the VPC's namespace.
    public static let vpcInterface = "zonelink0"
    /// The conntrack mark: bits 0-11 the consumer link (reply routing, 4095 VPCs at most),
    /// bits 12-31 the load balancer slot (SNAT address and the provider's route).
    public static let consumerMask: UInt32 = 0xfff
    public static let balancerShift: UInt32 = 12
    public static let balancerMask: UInt32 = 0xffff_f000
    public static let maxLinks = 4095
    public static let maxBalancers = (1 << 20) - 1
    /// Routing tables in the gateway namespace: link N routes through table `routeTableBase + N`.
    public static let routeTableBase = 1000
    /// Priorities of the gateway namespace's `ip rule`s: by consumer link (replies), by load
    /// balancer slot (flows on to the provider), and the `local` table after both. Every packet
    /// from a link carries a mark, so it never looks into `local` (one routing table lookup
    /// fewer per packet, and no VPC reaches an address of the gateway namespace itself);
    /// unmarked packets (ARP's checks, the namespace's own) still find it before `main`.
    public static let linkRulePriority = 100
    public static let balancerRulePriority = 200
    public static let localRulePriority = 300

    /// A veth pair between the gateway namespace and one VPC's namespace. Its /30 comes from
    /// 169.254.0.0/16 (link-local: never a VPC's address space): `169.254.0.0 + 4 × index`,
    /// `.1` on the gateway's end, `.2` on the VPC's.
    public struct Link: Sendable, Hashable {
        public var vpc: String
        public var netns: String
        public var index: Int

        public init(vpc: String, netns: String, index: Int) {
            self.vpc = vpc
            self.netns = netns
            self.index = index
        }

        /// The gateway's end, in the gateway namespace.
        public var gatewayInterface: String { "zlg\(index)" }
        public var gatewayAddress: IPv4Address { IPv4Address(0xA9FE_0000 | UInt32(index * 4 + 1)) }
        public var vpcAddress: IPv4Address { IPv4Address(0xA9FE_0000 | UInt32(index * 4 + 2)) }
        public var routeTable: Int { KernelNAT.routeTableBase + index }
    }

    /// Numbers for new names that keep the old ones' numbers: a link or slot keeps its number
    /// across catalogs (open flows' marks name it), a new one takes the lowest free number.
    public static func assign(_ wanted: [String], previous: [String: Int], limit: Int) throws(KernelNATError) -> [String: Int] {
        var next: [String: Int] = [:]
        for name in wanted { if let n = previous[name] { next[name] = n } }
        var used = Set(next.values)
        var candidate = 1
        for name in wanted where next[name] == nil {
            while used.contains(candidate) { candidate += 1 }
            guard candidate <= limit else { throw .tooMany(what: "kernel data path links or load balancers", limit: limit) }
            next[name] = candidate
            used.insert(candidate)
        }
        return next
    }

    /// A target a kernel flow may go to now: a healthy backend with weight above 0 outside
    /// the shifted zones, or the external load balancer (weight 1).
    public struct Target: Sendable, Hashable {
        public var address: IPv4Endpoint
        public var weight: Int

        public init(address: IPv4Endpoint, weight: Int) {
            self.address = address
            self.weight = weight
        }
    }

    /// What one table is made of.
    public struct Input: Sendable {
        public var ports: [GatewayPlan.ENIListener]
        public var upstreams: [GatewayPlan.Upstream]
        /// Each upstream's eligible targets, by `upstreamKey`.
        public var targets: [String: [Target]]
        /// Links by VPC ID.
        public var links: [String: Link]
        /// Slots by load balancer ID.
        public var balancerSlots: [String: Int]
        public var natPorts: ClosedRange<UInt16>
        /// Conntrack's idle timeouts for admitted flows (`gateway.tcpIdleTimeout`, `udpIdleTimeout`).
        public var idleTimeouts: KernelFlows.IdleTimeouts

        public init(
            ports: [GatewayPlan.ENIListener], upstreams: [GatewayPlan.Upstream], targets: [String: [Target]],
            links: [String: Link], balancerSlots: [String: Int], natPorts: ClosedRange<UInt16>,
            idleTimeouts: KernelFlows.IdleTimeouts = KernelFlows.IdleTimeouts(tcp: .seconds(900), udp: .seconds(60))
        ) {
            self.idleTimeouts = idleTimeouts
            self.ports = ports
            self.upstreams = upstreams
            self.targets = targets
            self.links = links
            self.balancerSlots = balancerSlots
            self.natPorts = natPorts
        }
    }

    public static func upstreamKey(_ loadBalancer: String, _ listener: Int) -> String { "\(loadBalancer)#\(listener)" }

    /// The mark of flows from the consumer link `link` to the load balancer in `slot`.
    public static func mark(link: Int, slot: Int) -> UInt32 { UInt32(link) | UInt32(slot) << balancerShift }

    static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

    /// The table's definition (`table ip zonelink { … }`).
    public static func table(_ input: Input) -> String {
        // Every packet through the gateway passes the `zones`, `steer` and `passing` chains, so
        // each is a few rules whatever the number of links and ports: a map by interface where
        // a rule per link would do. Admission (a rule per port) lives in the NAT chain, which
        // conntrack runs for a flow's first packet only. Interfaces are matched by name
        // (`iifname`), not index: a link whose VPC namespace went away must not make the next
        // transaction fail (an index is resolved when the rules are loaded).
        var zones: [String] = []
        var steer: [String] = [
            // Replies go back by the consumer link; DNATed flows on by the load balancer slot
            // (to the provider's link).
            "ct direction reply meta mark set ct mark and \(hex(consumerMask)) accept",
            "ct status dnat meta mark set ct mark and \(hex(balancerMask)) accept",
        ]
        var destination: [String] = []
        var source: [String] = []

        let links = input.links.values.sorted(by: { $0.index < $1.index })
        func byLink(_ value: (KernelNAT.Link) -> String) -> String {
            "iifname map { " + links.map { "\"\($0.gatewayInterface)\" : \(value($0))" }.joined(separator: ", ") + " }"
        }
        if !links.isEmpty {
            // Original-direction zone: two consumers' identical tuples are two entries; the
            // reply tuples (to a NAT address and port) are unique anyway, so replies need no zone.
            zones.append("ct original zone set " + byLink { "\($0.index)" })
            // A flow's first packet, and whatever is not DNATed (not admitted, not Connected, no
            // eligible target), is routed back toward its own link; an admitted first packet
            // gets its slot in `to_backend`. What is refused this way meets `passing`'s reject,
            // and the reset (which reflects the mark: fwmark_reflect) finds its way to the client.
            steer.append("meta mark set " + byLink { hex(UInt32($0.index)) })
        }
        let upstreams = Dictionary(input.upstreams.map { (upstreamKey($0.loadBalancer, $0.listener), $0) }, uniquingKeysWith: { a, _ in a })
        for port in input.ports {
            let key = upstreamKey(port.loadBalancer, port.listener)
            guard let link = input.links[port.vpc], let slot = input.balancerSlots[port.loadBalancer],
                  upstreams[key] != nil, let dnat = dnat(input.targets[key] ?? [])
            else { continue }
            // Admission: the sources of the security group rules that allow this port (allow
            // rules only; an endpoint with none admits nothing), as one set.
            var sources: [IPv4Prefix] = []
            for group in port.securityGroups {
                for rule in group.ingress where rule.protocol == nil || rule.protocol == port.proto {
                    guard rule.ports.contains(port.address.port) else { continue }
                    sources.append(rule.source)
                }
            }
            guard let admitted = sourceMatch(sources) else { continue }
            // An admitted flow gets its mark (consumer link and load balancer slot), its first
            // packet the slot to route by, its conntrack entry ZoneLink's idle timeout (a `ct
            // timeout` object of the table, set while the entry is still unconfirmed), and its
            // target.
            let mark = self.mark(link: link.index, slot: slot)
            let timeout = port.proto == .tcp ? input.idleTimeouts.tcpObject : input.idleTimeouts.udpObject
            destination.append(
                "iifname \"\(link.gatewayInterface)\" ip daddr \(port.address.address) \(port.proto.rawValue) dport \(port.address.port) \(admitted)"
                    + " ct mark set \(hex(mark)) meta mark set \(hex(mark & balancerMask)) ct timeout set \"\(timeout)\" \(dnat)")
        }
        for (balancer, slot) in input.balancerSlots.sorted(by: { $0.value < $1.value }) {
            guard let nat = input.upstreams.first(where: { $0.loadBalancer == balancer })?.natAddresses, !nat.isEmpty else { continue }
            let ports = "\(input.natPorts.lowerBound)-\(input.natPorts.upperBound)"
            let to = nat.count == 1
                ? "\(nat[0]):\(ports)"
                : "jhash ip saddr . ip daddr mod \(nat.count) map { "
                    + nat.enumerated().map { "\($0.offset) : \($0.element)" }.joined(separator: ", ") + " } : \(ports)"
            source.append("ct mark and \(hex(balancerMask)) == \(hex(UInt32(slot) << balancerShift)) meta l4proto { tcp, udp } snat to \(to)")
        }

        func chain(_ name: String, _ hook: String, _ rules: [String]) -> String {
            "  chain \(name) {\n    \(hook)\n" + rules.map { "    \($0)\n" }.joined() + "  }\n"
        }
        // Idle timeouts as the relay measures them (from the last packet either way): an
        // established TCP entry, also while data waits for its ACK (`unack`) or is being
        // retransmitted (`retrans`): conntrack's 300 s otherwise, and a bulk transfer into a
        // full window is in one of them most of the time (zero-window probes count as
        // retransmissions); and a UDP entry replied or not. Other TCP states (handshake, closing) keep
        // conntrack's defaults, which are shorter.
        let timeouts = input.idleTimeouts
        let objects = "  ct timeout \(timeouts.tcpObject) {\n    protocol tcp\n    l3proto ip\n    policy = { established : \(timeouts.tcp), retrans : \(timeouts.tcp), unack : \(timeouts.tcp) }\n  }\n"
            + "  ct timeout \(timeouts.udpObject) {\n    protocol udp\n    l3proto ip\n    policy = { unreplied : \(timeouts.udp), replied : \(timeouts.udp) }\n  }\n"
        return "table ip \(table) {\n"
            + objects
            + chain("zones", "type filter hook prerouting priority raw; policy accept;", zones)
            + chain("steer", "type filter hook prerouting priority mangle; policy accept;", steer)
            + chain("to_backend", "type nat hook prerouting priority dstnat; policy accept;", destination)
            + chain("passing", "type filter hook forward priority filter; policy drop;", [
                "ct state established,related accept",
                "ct state new ct status dnat accept",
                // Not admitted, not Connected, or no healthy target: refused as the relay would.
                "meta l4proto tcp reject with tcp reset",
                "reject",
            ])
            + chain("to_nat", "type nat hook postrouting priority srcnat; policy accept;", source)
            + "}\n"
    }

    /// The match of `sources` (`ip saddr 10.10.0.0/16`, or a set of several), or nil when there
    /// is none. A prefix inside another is dropped: an nftables set holds no overlapping
    /// intervals, and prefixes either nest or are disjoint.
    static func sourceMatch(_ sources: [IPv4Prefix]) -> String? {
        var kept: [IPv4Prefix] = []
        for prefix in sources.sorted(by: { ($0.length, $0.network) < ($1.length, $1.network) })
        where !kept.contains(where: { $0.contains(prefix) }) {
            kept.append(prefix)
        }
        switch kept.count {
        case 0: return nil
        case 1: return "ip saddr \(kept[0])"
        default: return "ip saddr { " + kept.sorted(by: { $0.network < $1.network }).map(\.description).joined(separator: ", ") + " }"
        }
    }

    /// The DNAT statement for `targets`: by weight among them (a random number modulo the
    /// total weight, mapped to ranges), or nil when there is none (the flow is refused).
    static func dnat(_ targets: [Target]) -> String? {
        let live = targets.filter { $0.weight > 0 }
        guard !live.isEmpty else { return nil }
        if live.count == 1 { return "dnat to \(live[0].address.address):\(live[0].address.port)" }
        let divisor = live.map(\.weight).reduce(0, gcd)
        var start = 0
        var entries: [String] = []
        for target in live {
            let width = target.weight / divisor
            let range = width == 1 ? "\(start)" : "\(start)-\(start + width - 1)"
            entries.append("\(range) : \(target.address.address) . \(target.address.port)")
            start += width
        }
        return "dnat to numgen random mod \(start) map { " + entries.joined(separator: ", ") + " }"
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// One nftables transaction that replaces the table's rules whole. libnftables sends the
    /// buffer as one netlink batch, which the kernel commits or rejects as one: a packet sees
    /// the old rules or the new ones, never half of each. Conntrack entries (open flows' NAT
    /// bindings) do not live in the table and survive the swap.
    ///
    /// The first table of a process (`previous` nil) starts from nothing: the first line
    /// creates the table when it is missing (so the delete never fails), the second deletes
    /// it with whatever a killed ZoneLink left, the rest defines it anew. Later ones flush the
    /// rules and define them anew but keep the table's `ct timeout` objects: deleting one
    /// would hand every open flow that uses it back to conntrack's default timeouts (5 days
    /// for established TCP). Objects of idle timeouts no longer configured are deleted (their
    /// flows then fall back to those defaults; a changed timeout applies to new flows).
    public static func replacement(_ input: Input, previous: Input? = nil) -> String {
        guard let previous else { return "table ip \(table)\ndelete table ip \(table)\n" + table(input) }
        var text = "flush table ip \(table)\n"
        let (old, new) = (previous.idleTimeouts, input.idleTimeouts)
        if old.tcpObject != new.tcpObject { text += "delete ct timeout ip \(table) \(old.tcpObject)\n" }
        if old.udpObject != new.udpObject { text += "delete ct timeout ip \(table) \(old.udpObject)\n" }
        return text + table(input)
    }

    /// The transaction that removes ZoneLink's table (on stop), and only it.
    public static var removal: String { "table ip \(table)\ndelete table ip \(table)\n" }
}

public enum KernelNATError: Error, Equatable, CustomStringConvertible {
    case tooMany(what: String, limit: Int)

    public var description: String {
        switch self {
        case .tooMany(let what, let limit): "more than \(limit) \(what): the kernel data path's marks hold no more; move services to dataPlane: relay"
        }
    }
}
