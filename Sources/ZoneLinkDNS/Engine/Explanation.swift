import ZoneLinkCore

/// Why a question gets the answer it gets (`zonelink dns explain`, `GET /v1/dns/explain`):
/// the view, the zone, the client's zone and how it was found, every candidate ENI with the
/// reason it was kept or dropped, and the answer as the server sends it.
///
/// Filled in by `DecisionTrail` while `Responder.decide` runs: the same code as serving.
public struct Explanation: Sendable, Equatable, Codable {
    /// One ENI an endpoint name could answer with.
    public struct Candidate: Sendable, Equatable, Codable {
        /// The name whose records it is.
        public var name: String
        /// `endpoint/zone`.
        public var eni: String
        public var endpoint: String
        public var zone: String
        public var address: String
        /// As the gateway's health checks see it.
        public var healthy: Bool
        /// Its zone is shifted away (`ZonalShift`): answered as an unhealthy ENI is.
        public var shiftedAway: Bool
        public var kept: Bool
        public var reason: String
    }

    public var name: String
    public var type: String
    /// The VPC whose view was asked for (nil: a client of no VPC).
    public var vpc: String?
    public var source: String?
    public var listenerZone: String?
    public var clientSubnet: String?
    /// The VPC whose view answered; nil: the view of clients of no VPC.
    public var view: String?
    public var viewNote: String = ""
    public var clientZone: String?
    /// `listener`, `vswitch`, `clientSubnet` or `unknown` (`ZoneAffinity.Basis`).
    public var clientZoneFoundBy: String = ZoneAffinity.Basis.unknown.rawValue
    /// True when the name is in no zone of the view and goes to `dns.upstreams` (then there
    /// is no answer of ZoneLink's own to show).
    public var forwarded = false
    /// The apex of the zone that answers; nil when none does (REFUSED or forwarded).
    public var zone: String?
    /// The SOA serial of that zone as served.
    public var serial: UInt32?
    public var candidates: [Candidate] = []
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, …; nil when forwarded.
    public var rcode: String?
    public var authoritative = false
    /// The sections in master-file form, one record a line, exactly the records sent.
    public var answer: [String] = []
    public var authority: [String] = []
    public var additional: [String] = []

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

/// A question to explain: what a client would send, and where from.
public struct ExplainQuestion: Sendable {
    public var name: DNSName
    public var type: RRType
    /// The listener's VPC (nil: a listener of no VPC).
    public var vpc: String?
    /// The listener's zone (`dns.listen[].zone`), when it has one.
    public var listenerZone: String?
    public var source: IPv4Address?
    /// An EDNS Client Subnet the query carries.
    public var clientSubnet: IPv4Prefix?

    public init(name: DNSName, type: RRType, vpc: String?, listenerZone: String? = nil, source: IPv4Address? = nil, clientSubnet: IPv4Prefix? = nil) {
        self.name = name
        self.type = type
        self.vpc = vpc
        self.listenerZone = listenerZone
        self.source = source
        self.clientSubnet = clientSubnet
    }
}

extension RRType {
    /// A type by its mnemonic (`A`, `aaaa`, `TYPE65`) or number; nil when it is neither.
    public init?(text: String) {
        let upper = text.uppercased()
        let named: [String: RRType] = [
            "A": .a, "NS": .ns, "CNAME": .cname, "SOA": .soa, "PTR": .ptr, "MX": .mx, "TXT": .txt, "AAAA": .aaaa,
            "SRV": .srv, "DNAME": .dname, "DS": .ds, "IXFR": .ixfr, "AXFR": .axfr, "ANY": .any,
        ]
        if let type = named[upper] {
            self = type
        } else if let number = UInt16(upper.hasPrefix("TYPE") ? String(upper.dropFirst(4)) : upper) {
            self.init(rawValue: number)
        } else {
            return nil
        }
    }
}

extension Responder {
    /// Explains `question` by answering it with a recording trail: the server's own decision.
    public func explain(_ question: ExplainQuestion) -> Explanation {
        var explanation = Explanation(name: question.name.description, type: question.type.description)
        explanation.vpc = question.vpc
        explanation.source = question.source?.description
        explanation.listenerZone = question.listenerZone
        explanation.clientSubnet = question.clientSubnet?.description
        let subnet = question.clientSubnet.map { prefix in
            let bytes = (prefix.length + 7) / 8
            let o = prefix.network.octets
            return ClientSubnet(family: 1, sourcePrefix: UInt8(prefix.length), scopePrefix: 0, address: Array([o.0, o.1, o.2, o.3].prefix(bytes)))
        }
        let query = Query(
            id: 0, flags: 0, name: question.name, type: question.type, qclass: DNSClass.internet, questionEnd: 0,
            edns: subnet.map { EDNSOptions(payloadSize: EDNS.advertisedPayloadSize, version: 0, dnssecOK: false, clientSubnet: $0) })
        var trail = DecisionTrail(explanation: explanation)
        let decision = decide(
            query, listener: ListenerContext(vpc: question.vpc, zone: question.listenerZone), source: question.source, trail: &trail)
        explanation = trail.explanation
        guard case .answer(let answer) = decision else { return explanation }
        explanation.rcode = answer.rcode.description
        explanation.authoritative = answer.authoritative
        explanation.serial = engine.serial(ofZone: explanation.zone, vpc: question.vpc)
        func lines(_ section: [RecordSet]) -> [String] {
            section.flatMap { set in
                set.records.map { ZoneExport.text(owner: set.owner, type: set.rrset.type, ttl: set.rrset.ttl, data: $0) }
            }
        }
        explanation.answer = lines(answer.answer)
        explanation.authority = lines(answer.authority)
        explanation.additional = lines(answer.additional)
        return explanation
    }
}

extension AnswerEngine {
    /// The SOA serial of the zone at `apex` in `vpc`'s view.
    func serial(ofZone apex: String?, vpc: String?) -> UInt32? {
        guard let apex = apex.flatMap({ DNSName($0) }), let zone = view(vpc).zones[apex] else { return nil }
        let data = zone.negativeSOA.records.first ?? []
        guard data.count >= 20 else { return nil }
        return data[(data.count - 20)..<(data.count - 16)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}
