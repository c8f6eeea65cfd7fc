import ZoneLinkCore

/// Decides the answer to a question for a client of one view, from one catalog. Pure: no
/// sockets, no clock; the same inputs give the same answer.
///
/// A view is what a client of one VPC sees (or of no VPC). Zones are found by the longest
/// matching suffix of the question name; names in no zone are REFUSED here (forwarding is the
/// server's business, not the engine's).
public struct AnswerEngine: Sendable {
    public let catalog: Catalog
    private let views: [String: View]
    private let outsideView: View

    /// The zones one client population sees, by apex.
    struct View: Sendable {
        var zones: [DNSName: Zone]
        /// The longest apex, in labels: no suffix longer than this needs looking up.
        var deepestApex: Int
    }

    public init(catalog: Catalog, staticZones: [Zone] = []) {
        self.catalog = catalog
        let names = GeneratedNames(catalog: catalog)
        let shared = names.sharedRecords(catalog)
        var base: [DNSName: Zone] = [:]
        for zone in staticZones { base[zone.apex] = zone }
        let generated = Zone(apex: names.domain, records: shared.records, emptyNames: shared.emptyNames)!
        base[names.domain] = generated
        self.outsideView = View(zones: base)

        var views: [String: View] = [:]
        for vpc in catalog.vpcs {
            var zones = base
            var serviceRecords: [(DNSName, RRset)] = []
            for service in catalog.services {
                let enis = names.enis(of: service, in: vpc.id, catalog)
                guard !enis.isEmpty else { continue }
                let addresses = names.addresses(of: enis, zoneAffinity: service.zoneAffinity)
                serviceRecords.append((names.serviceName(service.id), addresses))
                if let privateDomain = service.privateDomain, let apex = DNSName(privateDomain) {
                    zones[apex] = Zone(apex: apex, records: [(apex, names.soa()), (apex, names.ns()), (apex, addresses)])
                }
            }
            if !serviceRecords.isEmpty {
                zones[names.domain] = Zone(
                    apex: names.domain, records: shared.records + serviceRecords, emptyNames: shared.emptyNames)!
            }
            views[vpc.id] = View(zones: zones)
        }
        self.views = views
    }

    /// The zone of the vSwitch in `vpc` that holds `address`: a client's zone when its listener names none.
    public func zone(of address: IPv4Address, in vpc: String) -> String? {
        catalog.vpc(vpc)?.vswitch(holding: address)?.zone
    }

    /// True when `name` lies in a zone this view serves (so it is answered, not forwarded).
    public func serves(_ name: DNSName, vpc: String?) -> Bool {
        zone(for: name, in: view(vpc)) != nil
    }

    public func answer(_ query: Query, vpc: String?, clientZone: String?, health: ZoneHealth = .allHealthy) -> Answer {
        guard query.qclass == DNSClass.internet || query.qclass == DNSClass.any else { return .refused }
        guard let zone = zone(for: query.name, in: view(vpc)) else { return .refused }
        // Zone transfers are not offered.
        if query.type == .axfr || query.type == .ixfr { return .refused }
        var answer = zone.answer(query.name, query.type)
        for i in answer.answer.indices where answer.answer[i].rrset.enis != nil {
            answer.answer[i].rrset = applyAffinity(answer.answer[i].rrset, clientZone: clientZone, health: health)
        }
        return answer
    }

    fileprivate func view(_ vpc: String?) -> View {
        vpc.flatMap { views[$0] } ?? outsideView
    }

    private func zone(for name: DNSName, in view: View) -> Zone? {
        var suffix = name
        var labels = name.labelCount
        while labels > view.deepestApex {
            suffix = suffix.parent
            labels -= 1
        }
        while true {
            if let zone = view.zones[suffix] { return zone }
            if suffix.isRoot { return nil }
            suffix = suffix.parent
        }
    }

    /// DESIGN section 5: with affinity on and a healthy ENI in the client's zone, only that
    /// zone's ENIs; otherwise every healthy ENI, same zone first; with none healthy, every ENI.
    func applyAffinity(_ rrset: RRset, clientZone: String?, health: ZoneHealth) -> RRset {
        guard let selection = rrset.enis else { return rrset }
        let indices = rrset.rdata.indices
        var chosen = indices.filter { health.isHealthy(selection.keys[$0]) }
        let someHealthy = !chosen.isEmpty
        if !someHealthy { chosen = Array(indices) }
        if let clientZone {
            let local = chosen.filter { selection.keys[$0].zone == clientZone }
            if selection.zoneAffinity && someHealthy && !local.isEmpty {
                chosen = local
            } else {
                chosen = local + chosen.filter { selection.keys[$0].zone != clientZone }
            }
        }
        if chosen.count == rrset.rdata.count && chosen == Array(indices) { return rrset }
        var result = rrset
        result.rdata = chosen.map { rrset.rdata[$0] }
        result.enis = ENISelection(keys: chosen.map { selection.keys[$0] }, zoneAffinity: selection.zoneAffinity)
        return result
    }
}

extension AnswerEngine.View {
    init(zones: [DNSName: Zone]) {
        self.zones = zones
        self.deepestApex = zones.keys.map(\.labelCount).max() ?? 0
    }
}

extension AnswerEngine {
    /// The generated zone (the domain) as clients of `vpc` see it: what `zone export` writes.
    public func generatedZone(vpc: String?) -> Zone {
        view(vpc).zones[DNSName(catalog.domain)!]!
    }
}
