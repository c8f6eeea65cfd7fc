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

    init(catalog: Catalog) {
        self.domain = DNSName(catalog.domain)!
        self.names = EndpointNames(catalog)
        self.ttl = catalog.dns.ttl
        self.serial = catalog.serial
    }

    var nameserver: DNSName { domain.prepending(Array("ns".utf8)) }
    var hostmaster: DNSName { domain.prepending(Array("hostmaster".utf8)) }

    // The catalog's IDs are labels (the validator's rule), so these names always parse.
    func serviceName(_ service: String) -> DNSName { DNSName(names.service(service))! }

    func endpointName(_ endpoint: Endpoint) -> DNSName { DNSName(endpoint.dnsName(names))! }

    func zonalName(_ endpoint: Endpoint, eni: ENI) -> DNSName { DNSName(endpoint.dnsName(of: eni, names))! }

    /// The SOA that heads a generated zone (the domain itself, or a private domain).
    func soa() -> RRset {
        var data = nameserver.wire + hostmaster.wire
        for value in [serial, 3600, 600, 86400, ttl] {
            data += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        return RRset(type: .soa, ttl: ttl, rdata: [data])
    }

    func ns() -> RRset { RRset(type: .ns, ttl: ttl, rdata: [nameserver.wire], targets: [nameserver]) }

    /// The A records of a set of ENIs, tagged so that answering can apply affinity and health.
    func addresses(of enis: [(Endpoint, ENI)], zoneAffinity: Bool) -> RRset {
        let ordered = enis.sorted { ($0.1.zone, $0.0.id) < ($1.1.zone, $1.0.id) }
        let rdata = ordered.map { addressData($0.1.address!) }
        var selection = ENISelection(enis: ordered.map { $0.0.id(of: $0.1) }, zoneAffinity: zoneAffinity)
        for zone in Set(selection.enis.map(\.zone)) {
            selection.whileHealthy[zone] = selection.choose(clientZone: zone, health: .allHealthy).map { rdata[$0] }
        }
        selection.whileHealthy[""] = rdata
        return RRset(type: .a, ttl: ttl, rdata: rdata, enis: selection)
    }

    func addressData(_ address: IPv4Address) -> [UInt8] {
        let o = address.octets
        return [o.0, o.1, o.2, o.3]
    }

    /// Records every view shares: apex SOA and NS, endpoint names, per-zone names; and the
    /// service names, which exist (NODATA) even where no endpoint of the service is.
    func sharedRecords(_ catalog: Catalog) -> (records: [(DNSName, RRset)], emptyNames: [DNSName]) {
        var records: [(DNSName, RRset)] = [(domain, soa()), (domain, ns())]
        for endpoint in catalog.endpoints {
            let affinity = catalog.service(endpoint.service)?.zoneAffinity ?? false
            records.append((endpointName(endpoint), addresses(of: endpoint.enis.map { (endpoint, $0) }, zoneAffinity: affinity)))
            for eni in endpoint.enis {
                records.append((zonalName(endpoint, eni: eni), RRset(type: .a, ttl: ttl, rdata: [addressData(eni.address!)])))
            }
        }
        return (records, catalog.services.map { serviceName($0.id) })
    }
}
