import ZoneLinkCore

/// The names ZoneLink generates for a catalog (`docs/dns.md`), as zones per view.
///
/// The view-independent part (apex, endpoint names, per-zone names) is built once; each VPC's
/// view adds what only that VPC sees: its service names and the services' private domains.
struct GeneratedNames {
    let domain: DNSName
    /// The names' spelling, shared with the control API and the validator.
    let names: EndpointNames
    let ttl: UInt32
    let serial: UInt32
    /// Each service's name (`epsrv-S.R.D`), parsed from its text once. Every endpoint and ENI
    /// name is one label in front of its service's name, so those are built from their parts
    /// rather than formatted as text and parsed back (400,000 names at 100,000 endpoints).
    private let serviceNames: [String: DNSName]

    init(catalog: Catalog) {
        self.domain = DNSName(catalog.domain)!
        let names = EndpointNames(catalog)
        self.names = names
        self.ttl = catalog.dns.ttl
        self.serial = catalog.serial
        var serviceNames: [String: DNSName] = [:]
        for service in catalog.services { serviceNames[service.id] = DNSName(names.service(service.id))! }
        self.serviceNames = serviceNames
    }

    var nameserver: DNSName { domain.prepending(Array("ns".utf8)) }
    var hostmaster: DNSName { domain.prepending(Array("hostmaster".utf8)) }

    // The catalog's IDs are labels of ASCII letters, digits and hyphens (the validator's rule),
    // so these names always parse, and `DNSName`'s ASCII lower-casing spells them as
    // `EndpointNames` does (`GeneratedNamesTests` holds the two to the same bytes).
    func serviceName(_ service: String) -> DNSName { serviceNames[service] ?? DNSName(names.service(service))! }

    /// `ep-E.epsrv-S.R.D`, as `Endpoint.dnsName(_:)` spells it.
    func endpointName(_ endpoint: Endpoint) -> DNSName {
        serviceName(endpoint.service).prepending(label: endpoint.id.utf8)!
    }

    /// `ep-E-Z.epsrv-S.R.D`, as `Endpoint.dnsName(of:_:)` spells it (`EndpointNames.zonalLabel`).
    func zonalName(_ endpoint: Endpoint, eni: ENI) -> DNSName {
        serviceName(endpoint.service).prepending(label: endpoint.id.utf8, "-".utf8, eni.zone.utf8)!
    }

    /// The SOA that heads a generated zone (the domain itself, or a private domain).
    func soa() -> RRset {
        var data = nameserver.wire + hostmaster.wire
        for value in [serial, 3600, 600, 86400, ttl] {
            data += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        return RRset(type: .soa, ttl: ttl, rdata: [data])
    }

    func ns() -> RRset { RRset(type: .ns, ttl: ttl, rdata: [nameserver.wire], targets: [nameserver]) }

    /// The A records of the ENIs `ids`, whose addresses are `data`, in the same order, tagged
    /// so that answering can apply affinity and health.
    func addresses(ids: [ENIID], data: [[UInt8]], zoneAffinity: Bool) -> RRset {
        let order = Self.zoneOrder(ids)
        let inOrder = order.indices.elementsEqual(order)
        let rdata = inOrder ? data : order.map { data[$0] }
        var selection = ENISelection(enis: inOrder ? ids : order.map { ids[$0] }, zoneAffinity: zoneAffinity)
        selection.answerWhileHealthy(rdata)
        return RRset(type: .a, ttl: ttl, rdata: rdata, enis: selection)
    }

    /// The positions of `enis` by zone, then endpoint: the order of an rrset's records. An
    /// endpoint's own ENIs are usually listed in zone order already, and a service's in a view
    /// come endpoint by endpoint in ID order, so each zone's share is usually sorted already.
    static func zoneOrder(_ enis: [ENIID]) -> [Int] {
        func isSorted(_ order: [Int], by before: (Int, Int) -> Bool) -> Bool {
            zip(order, order.dropFirst()).allSatisfy { !before($0.1, $0.0) }
        }
        let all = Array(enis.indices)
        if isSorted(all, by: { (enis[$0].zone, enis[$0].endpoint) < (enis[$1].zone, enis[$1].endpoint) }) { return all }
        var order: [Int] = []
        order.reserveCapacity(enis.count)
        for zone in Set(enis.map(\.zone)).sorted() {
            var share = all.filter { enis[$0].zone == zone }
            let byID: (Int, Int) -> Bool = { enis[$0].endpoint < enis[$1].endpoint }
            if !isSorted(share, by: byID) { share.sort(by: byID) }
            order += share
        }
        return order
    }

    func addressData(_ address: IPv4Address) -> [UInt8] {
        let o = address.octets
        return [o.0, o.1, o.2, o.3]
    }

    /// The generated zone every view shares: apex SOA and NS, endpoint names, per-zone names;
    /// and the service names, which exist (NODATA) even where no endpoint of the service is.
    ///
    /// Built straight into the zone's table: the service names (and the names above them)
    /// first, so that each endpoint and per-zone name, one label below its service's name, is
    /// added with one hash lookup and no walk up its ancestors.
    func sharedZone(_ catalog: Catalog) -> Zone {
        var nodes = Zone.Nodes(apex: domain, capacity: catalog.services.count + 4 * catalog.endpoints.count + 8)
        nodes.add(soa(), at: domain)
        nodes.add(ns(), at: domain)
        for service in catalog.services { nodes.addName(serviceName(service.id)) }
        var affinity: [String: Bool] = [:]
        for service in catalog.services { affinity[service.id] = service.zoneAffinity }
        for endpoint in catalog.endpoints {
            // An endpoint of a service the catalog does not hold (the validator refuses one) is
            // still added, the careful way.
            let known = affinity[endpoint.service]
            func put(_ rrset: RRset, at owner: DNSName) {
                if known != nil { nodes.addLeaf(rrset, at: owner) } else { nodes.add(rrset, at: owner) }
            }
            let addresses = addresses(
                ids: endpoint.enis.map { endpoint.id(of: $0) }, data: endpoint.enis.map { addressData($0.address!) },
                zoneAffinity: known ?? false)
            put(addresses, at: endpointName(endpoint))
            for eni in endpoint.enis {
                // The per-zone record shares its four bytes with the endpoint's record of it.
                let data = addressData(eni.address!)
                put(RRset(type: .a, ttl: ttl, rdata: [addresses.rdata.first { $0 == data } ?? data]), at: zonalName(endpoint, eni: eni))
            }
        }
        return Zone(nodes)!
    }
}
