import ZoneLinkCore

/// The kernel data path's NAT table, read from conntrack: which entries are ZoneLink's flows,
/// what a flow is in the terms of the relay's NAT table (VPC, client, ENI, NAT, target,
/// endpoint, bytes), and which entries outlived the port that admitted them. Pure: the shell
/// (`KernelConntrack`) dumps the gateway namespace's entries into `ConntrackEntry` values and
/// deletes the ones `stale` names.
///
/// A kernel flow's entry, as the table (`KernelNAT`) makes it: the original tuple is the
/// consumer's (client → ENI) in the conntrack zone of the consumer's link, the reply tuple is
/// the provider's (target → NAT address and port, after DNAT and SNAT), and the mark holds the
/// consumer link and the load balancer slot. The zone, not the addresses, says which VPC a
/// flow is from, so two consumers with the same client and ENI addresses never mix.
public enum KernelFlows {
    /// One conntrack entry of the gateway namespace, as libnetfilter_conntrack reports it.
    public struct ConntrackEntry: Sendable, Hashable {
        public var proto: TransportProtocol
        /// The original direction's conntrack zone (`ct original zone`): the consumer link.
        public var zone: UInt16
        public var mark: UInt32
        /// The original tuple: client → ENI.
        public var originalSource: IPv4Endpoint
        public var originalDestination: IPv4Endpoint
        /// The reply tuple: target → NAT address and port.
        public var replySource: IPv4Endpoint
        public var replyDestination: IPv4Endpoint
        /// Bytes each way when conntrack accounting is on (ZoneLink turns it on in its
        /// namespace); 0 otherwise.
        public var bytesOriginal: UInt64
        public var bytesReply: UInt64
        /// When conntrack made the entry (`nf_conntrack_timestamp`, which ZoneLink turns on),
        /// in nanoseconds of the real-time clock; nil when the kernel recorded none.
        public var startNanoseconds: UInt64?
        /// Seconds left before conntrack expires the entry.
        public var timeoutSeconds: UInt32

        public init(
            proto: TransportProtocol, zone: UInt16, mark: UInt32, originalSource: IPv4Endpoint, originalDestination: IPv4Endpoint,
            replySource: IPv4Endpoint, replyDestination: IPv4Endpoint, bytesOriginal: UInt64 = 0, bytesReply: UInt64 = 0,
            startNanoseconds: UInt64? = nil, timeoutSeconds: UInt32 = 0
        ) {
            self.proto = proto
            self.zone = zone
            self.mark = mark
            self.originalSource = originalSource
            self.originalDestination = originalDestination
            self.replySource = replySource
            self.replyDestination = replyDestination
            self.bytesOriginal = bytesOriginal
            self.bytesReply = bytesReply
            self.startNanoseconds = startNanoseconds
            self.timeoutSeconds = timeoutSeconds
        }

        /// ZoneLink's flows carry a consumer link in their zone and a mark (admitted); what
        /// else the namespace tracks (an operator's own traffic, refused packets) is not.
        public var isZoneLinks: Bool { zone != 0 && mark != 0 && UInt32(zone) == mark & KernelNAT.consumerMask }
    }

    /// A kernel flow in the relay's terms, for `zonelink nat list`, `GET /v1/nat` and metrics.
    public struct Row: Sendable, Hashable {
        public var key: FlowKey
        public var providerVPC: String
        public var nat: IPv4Endpoint
        public var target: IPv4Endpoint
        public var endpoint: String
        public var bytesFromClient: UInt64
        public var bytesFromTarget: UInt64
        /// Since conntrack made the entry; nil when it recorded no start.
        public var age: Duration?
    }

    /// What names a served port: the consumer link (zone), protocol and ENI address:port.
    struct PortKey: Hashable {
        var zone: UInt16
        var proto: TransportProtocol
        var eni: IPv4Endpoint
    }

    /// The kernel ports of the table in force, by (zone, protocol, ENI): the ports of
    /// Connected endpoints in consumer VPCs that have a link.
    public struct Served: Sendable {
        var ports: [PortKey: GatewayPlan.ENIListener]
        var providerVPCs: [String: String]

        public init(ports: [GatewayPlan.ENIListener], upstreams: [GatewayPlan.Upstream], links: [String: KernelNAT.Link]) {
            var byKey: [PortKey: GatewayPlan.ENIListener] = [:]
            for port in ports {
                guard let link = links[port.vpc] else { continue }
                byKey[PortKey(zone: UInt16(link.index), proto: port.proto, eni: port.address)] = port
            }
            self.ports = byKey
            self.providerVPCs = Dictionary(upstreams.map { ($0.loadBalancer, $0.providerVPC) }, uniquingKeysWith: { a, _ in a })
        }

        public static let none = Served(ports: [], upstreams: [], links: [:])

        func port(of entry: ConntrackEntry) -> GatewayPlan.ENIListener? {
            ports[PortKey(zone: entry.zone, proto: entry.proto, eni: entry.originalDestination)]
        }
    }

    /// The rows of ZoneLink's entries whose port is served; `nowNanoseconds` is the real-time
    /// clock, for ages.
    public static func rows(_ entries: [ConntrackEntry], served: Served, nowNanoseconds: UInt64) -> [Row] {
        entries.compactMap { entry in
            guard entry.isZoneLinks, let port = served.port(of: entry) else { return nil }
            let age = entry.startNanoseconds.map { start in
                Duration.nanoseconds(Int64(clamping: nowNanoseconds >= start ? nowNanoseconds - start : 0))
            }
            return Row(
                key: FlowKey(proto: entry.proto, vpc: port.vpc, client: entry.originalSource, eni: entry.originalDestination),
                providerVPC: served.providerVPCs[port.loadBalancer] ?? "", nat: entry.replyDestination, target: entry.replySource,
                endpoint: port.endpoint, bytesFromClient: entry.bytesOriginal, bytesFromTarget: entry.bytesReply, age: age)
        }
    }

    /// Whether `entry` is a ZoneLink flow whose port the table no longer serves (its endpoint
    /// rejected or deleted, its zone or port removed, its consumer link gone): it is deleted,
    /// so the flow stops as a relayed one would.
    public static func isStale(_ entry: ConntrackEntry, served: Served) -> Bool {
        entry.isZoneLinks && served.port(of: entry) == nil
    }

    /// The `ct timeout` policies that give kernel flows ZoneLink's idle timeouts
    /// (`gateway.tcpIdleTimeout` for established TCP, `gateway.udpIdleTimeout` for UDP either
    /// way), in whole seconds, at least 1.
    public struct IdleTimeouts: Sendable, Hashable {
        public var tcp: UInt32
        public var udp: UInt32

        public init(tcp: Duration, udp: Duration) {
            self.tcp = Self.seconds(tcp)
            self.udp = Self.seconds(udp)
        }

        /// The table's `ct timeout` objects, named by their value: a changed timeout is a new
        /// object, so the one open flows use is never redefined under them.
        public var tcpObject: String { "tcp_idle_\(tcp)" }
        public var udpObject: String { "udp_idle_\(udp)" }

        static func seconds(_ duration: Duration) -> UInt32 {
            let (seconds, attoseconds) = duration.components
            let whole = seconds + (attoseconds > 0 ? 1 : 0)
            return UInt32(clamping: max(1, whole))
        }
    }
}
