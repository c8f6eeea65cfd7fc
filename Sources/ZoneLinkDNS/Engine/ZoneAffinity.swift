import ZoneLinkCore

/// Zone affinity, decided in one place (`docs/dns.md`): which zone a client is in, and which
/// ENIs an endpoint's answer keeps for it. Pure: the listener, the source, the catalog's VPC
/// and the health the gateway reported go in; a zone and a choice come out.
///
/// Kept apart from answering because it is the part of DNS that is ZoneLink's own policy
/// rather than RFC 1034, and the part a change of product behaviour touches.
public enum ZoneAffinity {
    /// The client's zone, and the EDNS Client Subnet scope an answer chosen for it carries.
    public struct ClientZone: Hashable, Sendable {
        public var zone: String?
        /// The prefix length of the client network the zone was read from: non-zero only when
        /// it came from a forwarder's Client Subnet, so caches keep the answer to that network.
        public var scope: UInt8
        /// How the zone was found (what `zonelink dns explain` reports).
        public var basis: Basis

        public init(zone: String?, scope: UInt8 = 0, basis: Basis) {
            self.zone = zone
            self.scope = scope
            self.basis = basis
        }

        public static let unknown = ClientZone(zone: nil, basis: .unknown)
    }

    /// Where a client's zone came from, in `clientZone`'s order.
    public enum Basis: String, Hashable, Sendable {
        /// The listener's `zone` (`dns.listen[].zone`).
        case listener
        /// The vSwitch of the listener's VPC that holds the source address.
        case vswitch
        /// The EDNS Client Subnet a trusted forwarder sent.
        case clientSubnet
        /// None of them: no zone.
        case unknown
    }

    /// Which ENIs `choose` kept, and the two facts that decided it (for explanations).
    public struct Choice: Sendable, Equatable {
        /// Indices into the ENIs, in answer order.
        public var kept: [Int]
        /// Some ENI is healthy; when none is, every ENI is kept.
        public var someHealthy: Bool
        /// Affinity narrowed the answer to the client's zone.
        public var affinityApplied: Bool
    }

    /// The listener's zone, else that of the vSwitch of `vpc` holding the source address,
    /// else that of the vSwitch holding the Client Subnet a trusted forwarder sent (scoped to
    /// that vSwitch's prefix). A subnet from anyone else is ignored: clients must not pick
    /// their own zone.
    public static func clientZone(
        listenerZone: String?, vpc: VPC?, source: IPv4Address?, clientSubnet: IPv4Prefix?, trustedForwarders: [IPv4Prefix]
    ) -> ClientZone {
        if let listenerZone { return ClientZone(zone: listenerZone, basis: .listener) }
        guard let vpc, let source else { return .unknown }
        if let vswitch = vpc.vswitch(holding: source) { return ClientZone(zone: vswitch.zone, basis: .vswitch) }
        guard let clientSubnet, trustedForwarders.contains(where: { $0.contains(source) }),
              let vswitch = vpc.vswitches.first(where: { $0.cidr.contains(clientSubnet) })
        else { return .unknown }
        return ClientZone(zone: vswitch.zone, scope: UInt8(vswitch.cidr.length), basis: .clientSubnet)
    }

    /// The ENIs an answer keeps, as indices into `enis`, in answer order: with affinity on and
    /// a healthy ENI in the client's zone (where `health` says it lives now), only that zone's; otherwise every healthy ENI, the
    /// client's zone first; with none healthy, every ENI (an answer that may work beats none).
    public static func choose(_ enis: [ENIID], clientZone: String?, affinity: Bool, health: ZoneHealth) -> [Int] {
        choice(enis, clientZone: clientZone, affinity: affinity, health: health).kept
    }

    /// `choose`, with the facts that decided it.
    public static func choice(_ enis: [ENIID], clientZone: String?, affinity: Bool, health: ZoneHealth) -> Choice {
        var chosen = enis.indices.filter { health.isHealthy(enis[$0]) }
        let someHealthy = !chosen.isEmpty
        if !someHealthy { chosen = Array(enis.indices) }
        guard let clientZone else { return Choice(kept: chosen, someHealthy: someHealthy, affinityApplied: false) }
        let local = chosen.filter { health.zone(of: enis[$0]) == clientZone }
        if affinity && someHealthy && !local.isEmpty { return Choice(kept: local, someHealthy: true, affinityApplied: true) }
        return Choice(kept: local + chosen.filter { health.zone(of: enis[$0]) != clientZone }, someHealthy: someHealthy, affinityApplied: false)
    }
}
