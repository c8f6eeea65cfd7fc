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

        public init(zone: String?, scope: UInt8 = 0) {
            self.zone = zone
            self.scope = scope
        }

        public static let unknown = ClientZone(zone: nil)
    }

    /// The listener's zone, else that of the vSwitch of `vpc` holding the source address,
    /// else that of the vSwitch holding the Client Subnet a trusted forwarder sent (scoped to
    /// that vSwitch's prefix). A subnet from anyone else is ignored: clients must not pick
    /// their own zone.
    public static func clientZone(
        listenerZone: String?, vpc: VPC?, source: IPv4Address?, clientSubnet: IPv4Prefix?, trustedForwarders: [IPv4Prefix]
    ) -> ClientZone {
        if let listenerZone { return ClientZone(zone: listenerZone) }
        guard let vpc, let source else { return .unknown }
        if let vswitch = vpc.vswitch(holding: source) { return ClientZone(zone: vswitch.zone) }
        guard let clientSubnet, trustedForwarders.contains(where: { $0.contains(source) }),
              let vswitch = vpc.vswitches.first(where: { $0.cidr.contains(clientSubnet) })
        else { return .unknown }
        return ClientZone(zone: vswitch.zone, scope: UInt8(vswitch.cidr.length))
    }

    /// The ENIs an answer keeps, as indices into `enis`, in answer order: with affinity on and
    /// a healthy ENI in the client's zone, only that zone's; otherwise every healthy ENI, the
    /// client's zone first; with none healthy, every ENI (an answer that may work beats none).
    public static func choose(_ enis: [ENIID], clientZone: String?, affinity: Bool, health: ZoneHealth) -> [Int] {
        var chosen = enis.indices.filter { health.isHealthy(enis[$0]) }
        let someHealthy = !chosen.isEmpty
        if !someHealthy { chosen = Array(enis.indices) }
        guard let clientZone else { return chosen }
        let local = chosen.filter { enis[$0].zone == clientZone }
        if affinity && someHealthy && !local.isEmpty { return local }
        return local + chosen.filter { enis[$0].zone != clientZone }
    }
}
