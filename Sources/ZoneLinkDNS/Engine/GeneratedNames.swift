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
