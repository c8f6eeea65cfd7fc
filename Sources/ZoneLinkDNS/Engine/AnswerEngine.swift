import ZoneLinkCore

/// Decides the answer to a question for a client of one view, from one catalog. Pure: no
/// sockets, no clock; the same inputs give the same answer.
///
/// A view is what a client of one VPC sees (or of no VPC). Zones are found by the longest
/// matching suffix of the question name; names in no zone are REFUSED here (forwarding is the
/// server's business, not the engine's).
///
/// A class so that the listeners share one engine by reference: copying a catalog's worth of
/// arrays per query would cost more than answering.
public final class AnswerEngine: Sendable {
    public let catalog: Catalog
    private let views: [String: View]
    private let outsideView: View
    /// The apexes of the operator's static zones: served in every view, never transferred.
    let staticApexes: Set<DNSName>

    /// The zones one client population sees, by apex.
    struct View: Sendable {
        var zones: [DNSName: Zone]
        /// The same zones, longest apex first: the first whose apex ends the name is its zone.
        var byDepth: [Zone]
    }

    public convenience init(catalog: Catalog, staticZones: [Zone] = []) {
        self.init(catalog: catalog, staticZones: staticZones, shared: SharedZone(catalog), services: ServiceNames(catalog))
    }

    /// An engine from its two large parts, which need nothing of each other: built side by
    /// side (`ServingPlan`), a start or a reload waits for the longer one only.
    public init(catalog: Catalog, staticZones: [Zone] = [], shared: SharedZone, services: ServiceNames) {
        self.catalog = catalog
        self.staticApexes = Set(staticZones.map(\.apex))
        var base: [DNSName: Zone] = [:]
        for zone in staticZones { base[zone.apex] = zone }
        base[shared.zone.apex] = shared.zone
        self.outsideView = View(zones: base)
        var views: [String: View] = [:]
        for vpc in catalog.vpcs {
            var zones = base
            if let names = services.byVPC[vpc.id] {
                zones.merge(names.privateZones) { _, privateZone in privateZone }
                if !names.records.isEmpty { zones[shared.zone.apex] = shared.zone.adding(names.records)! }
            }
            views[vpc.id] = View(zones: zones)
        }
        self.views = views
    }

    /// The generated zone every view shares: each endpoint's regional and zonal names.
    public struct SharedZone: Sendable {
        let zone: Zone

        public init(_ catalog: Catalog) {
            zone = GeneratedNames(catalog: catalog).sharedZone(catalog)
        }
    }

    /// What each VPC's view adds to the shared zone: its services' names (the addresses of
    /// that VPC's endpoints of each service) and their private domains.
    public struct ServiceNames: Sendable {
        let byVPC: [String: (records: [(DNSName, RRset)], privateZones: [DNSName: Zone])]

        public init(_ catalog: Catalog) {
            let names = GeneratedNames(catalog: catalog)
            // Each VPC's endpoints by service, found in one pass (not one pass per VPC and
            // service), as positions: an endpoint is a large value, and copies of 100,000 of
            // them cost more than the records made of them.
            var endpointsByView: [String: [String: [Int]]] = [:]
            for (i, endpoint) in catalog.endpoints.enumerated() { endpointsByView[endpoint.vpc, default: [:]][endpoint.service, default: []].append(i) }
            var byVPC: [String: (records: [(DNSName, RRset)], privateZones: [DNSName: Zone])] = [:]
            for vpc in catalog.vpcs {
                var records: [(DNSName, RRset)] = []
                var privateZones: [DNSName: Zone] = [:]
                let endpoints = endpointsByView[vpc.id] ?? [:]
                for service in catalog.services {
                    var ids: [ENIID] = []
                    var data: [[UInt8]] = []
                    for i in endpoints[service.id] ?? [] {
                        for eni in catalog.endpoints[i].enis {
                            ids.append(ENIID(endpoint: catalog.endpoints[i].id, zone: eni.zone))
                            data.append(names.addressData(eni.address!))
                        }
                    }
                    guard !ids.isEmpty else { continue }
                    let addresses = names.addresses(ids: ids, data: data, zoneAffinity: service.zoneAffinity)
                    records.append((names.serviceName(service.id), addresses))
                    if let privateDomain = service.privateDomain, let apex = DNSName(privateDomain) {
                        privateZones[apex] = Zone(apex: apex, records: [(apex, names.soa()), (apex, names.ns()), (apex, addresses)])
                    }
                }
                byVPC[vpc.id] = (records, privateZones)
            }
            self.byVPC = byVPC
        }
    }

    /// True when `name` lies in a zone this view serves (so it is answered, not forwarded).
    public func serves(_ name: DNSName, vpc: String?) -> Bool {
        zone(for: name, in: view(vpc)) != nil
    }

    public func answer(_ query: Query, vpc: String?, clientZone: String?, health: ZoneHealth = .allHealthy) -> Answer {
        var trail = SilentTrail()
        return answer(query, vpc: vpc, clientZone: clientZone, health: health, trail: &trail)
    }

    /// The answer, each decision told to `trail` as it is taken (`AnswerTrail`).
    func answer<Trail: AnswerTrail>(
        _ query: Query, vpc: String?, clientZone: String?, health: ZoneHealth, trail: inout Trail
    ) -> Answer {
        guard query.qclass == DNSClass.internet || query.qclass == DNSClass.any else { return .refused }
        let zone = zone(for: query.name, in: view(vpc))
        trail.zone(zone?.apex)
        guard let zone else { return .refused }
        // Zone transfers are not offered.
        if query.type == .axfr || query.type == .ixfr { return .refused }
        var answer = zone.answer(query.name, query.type)
        for i in answer.answer.indices {
            if let selection = answer.answer[i].rrset.enis {
                answer.answer[i].records = records(
                    of: answer.answer[i].rrset, owner: answer.answer[i].owner, chosenBy: selection, clientZone: clientZone,
                    health: health, trail: &trail)
            }
        }
        return answer
    }

    /// True when `vpc` has a view of its own (else its clients get the view of no VPC).
    func hasView(_ vpc: String?) -> Bool {
        vpc.map { views[$0] != nil } ?? true
    }

    func view(_ vpc: String?) -> View {
        vpc.flatMap { views[$0] } ?? outsideView
    }

    /// The zone with the longest apex that `name` lies in. Views hold a handful of zones, so a
    /// scan without allocation beats hashing every suffix.
    private func zone(for name: DNSName, in view: View) -> Zone? {
        view.byDepth.first { name.endsWith($0.apex) }
    }

    /// The records of an endpoint's rrset that this client is answered (`ZoneAffinity.choose`).
    func records(of rrset: RRset, chosenBy selection: ENISelection, clientZone: String?, health: ZoneHealth) -> [[UInt8]] {
        var trail = SilentTrail()
        return records(of: rrset, owner: nil, chosenBy: selection, clientZone: clientZone, health: health, trail: &trail)
    }

    func records<Trail: AnswerTrail>(
        of rrset: RRset, owner: DNSName?, chosenBy selection: ENISelection, clientZone: String?, health: ZoneHealth,
        trail: inout Trail
    ) -> [[UInt8]] {
        // The precomputed answers come from the same `choose`; an explanation needs its facts.
        if !trail.isRecording, health.isAllHealthy, let rdata = selection.answerWhileHealthy(clientZone: clientZone) { return rdata }
        let choice = ZoneAffinity.choice(selection.enis, clientZone: clientZone, affinity: selection.zoneAffinity, health: health)
        trail.chose(owner: owner, rdata: rrset.rdata, enis: selection.enis, choice: choice, health: health)
        return choice.kept.map { rrset.rdata[$0] }
    }
}

extension AnswerEngine.View {
    init(zones: [DNSName: Zone]) {
        self.zones = zones
        self.byDepth = zones.values.sorted { $0.apex.wire.count > $1.apex.wire.count }
    }
}

extension AnswerEngine {
    /// The generated zone (the domain) as clients of `vpc` see it: what `zone export` writes.
    public func generatedZone(vpc: String?) -> Zone {
        view(vpc).zones[DNSName(catalog.domain)!]!
    }

    /// The zones a secondary of `vpc`'s view carries: the generated zone and the VPC's private
    /// domains, apex order; the static zones are the operator's files, transferred from them.
    func transferableZones(vpc: String) -> [Zone] {
        view(vpc).zones.values.filter { !staticApexes.contains($0.apex) }.sorted { $0.apex.description < $1.apex.description }
    }
}
