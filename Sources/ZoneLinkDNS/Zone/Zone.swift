/// An authoritative zone in memory: every name that exists in it, with its rrsets.
///
/// Answering follows RFC 1034 section 4.3.2 with the refinements operators expect of NSD:
/// referrals at delegations, CNAME chains followed inside the zone, wildcards (RFC 4592),
/// empty non-terminals that exist (NODATA, not NXDOMAIN), and minimal responses.
/// It does not do DNSSEC, DNAME or zone transfers.
public struct Zone: Sendable {
    public let apex: DNSName
    /// Every name in the zone, empty non-terminals included (with no rrsets).
    let nodes: [DNSName: [RRset]]
    let hasDelegations: Bool
    let hasWildcards: Bool
    /// The SOA as it goes into negative answers: TTL the lesser of its own and its minimum (RFC 2308 section 3).
    let negativeSOA: RecordSet

    /// CNAME chains are followed at most this far, which also ends loops.
    static let maxChain = 8

    /// Builds a zone from (owner, rrset) pairs that all lie at or below `apex`, which must hold a SOA.
    /// `emptyNames` exist with no records of their own (NODATA rather than NXDOMAIN).
    public init?(apex: DNSName, records: [(DNSName, RRset)], emptyNames: [DNSName] = []) {
        var nodes: [DNSName: [RRset]] = [apex: []]
        nodes.reserveCapacity(records.count + emptyNames.count + 1)
        for (owner, rrset) in records where owner.isSubdomain(of: apex) {
            Self.add(rrset, at: owner, below: apex, to: &nodes)
        }
        for owner in emptyNames where owner.isSubdomain(of: apex) {
            Self.add(nil, at: owner, below: apex, to: &nodes)
        }
        self.init(apex: apex, nodes: nodes)
    }

    /// This zone with `records` (at or below the apex) added, as if they had been among the
    /// records it was built from. A view adds its few service names to the zone every view
    /// shares this way, without building the shared names (hundreds of thousands at 100,000
    /// endpoints) again per VPC.
    func adding(_ records: [(DNSName, RRset)]) -> Zone? {
        var nodes = self.nodes
        for (owner, rrset) in records where owner.isSubdomain(of: apex) {
            Self.add(rrset, at: owner, below: apex, to: &nodes)
        }
        return Zone(apex: apex, nodes: nodes)
    }

    private init?(apex: DNSName, nodes: [DNSName: [RRset]]) {
        guard let soa = nodes[apex]?.first(where: { $0.type == .soa }), let data = soa.rdata.first, data.count >= 20 else {
            return nil
        }
        let minimum = data.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let negative = RRset(type: .soa, ttl: min(soa.ttl, minimum), rdata: [data])
        self.apex = apex
        self.nodes = nodes
        self.negativeSOA = RecordSet(owner: apex, rrset: negative)
        self.hasDelegations = nodes.contains { $0.key != apex && $0.value.contains { $0.type == .ns } }
        self.hasWildcards = nodes.keys.contains { $0.wire.count > 2 && $0.wire[0] == 1 && $0.wire[1] == UInt8(ascii: "*") }
    }

    /// Adds `rrset` at `owner` (merged with one of its type already there), or only the name
    /// when `rrset` is nil (an empty name), and the empty non-terminals above it.
    private static func add(_ rrset: RRset?, at owner: DNSName, below apex: DNSName, to nodes: inout [DNSName: [RRset]]) {
        let known = nodes[owner] != nil
        if let rrset {
            nodes[owner, default: []].withMerged(rrset)
        } else if !known {
            nodes[owner] = []
        }
        if !known { addAncestors(of: owner, below: apex, to: &nodes) }
    }

    private static func addAncestors(of owner: DNSName, below apex: DNSName, to nodes: inout [DNSName: [RRset]]) {
        var ancestor = owner.parent
        while ancestor.wire.count > apex.wire.count, nodes[ancestor] == nil {
            nodes[ancestor] = []
            ancestor = ancestor.parent
        }
    }

    /// Answers `type` at `name`, which must lie at or below the apex.
    public func answer(_ name: DNSName, _ type: RRType) -> Answer {
        var answer = Answer(rcode: .noError, authoritative: true)
        resolve(name, type, into: &answer, chain: 0)
        return answer
    }

    private func resolve(_ name: DNSName, _ type: RRType, into answer: inout Answer, chain: Int) {
        if hasDelegations, let cut = delegation(above: name, type: type) {
            if chain == 0 { answer.authoritative = false }
            answer.authority.append(RecordSet(owner: cut.owner, rrset: cut.ns))
            answer.additional += glue(for: cut.ns)
            return
        }
        if let rrsets = nodes[name] {
            respond(from: rrsets, owner: name, type, into: &answer, chain: chain)
            return
        }
        if hasWildcards {
            var encloser = name.parent
            while nodes[encloser] == nil { encloser = encloser.parent }
            if let rrsets = nodes[encloser.prepending([UInt8(ascii: "*")])] {
                respond(from: rrsets, owner: name, type, into: &answer, chain: chain)
                return
            }
        }
        answer.rcode = .nxDomain
        answer.authority = [negativeSOA]
    }

    private func respond(from rrsets: [RRset], owner: DNSName, _ type: RRType, into answer: inout Answer, chain: Int) {
        if type == .any, let first = rrsets.first {
            // RFC 8482: one rrset is a full answer to ANY.
            answer.answer.append(RecordSet(owner: owner, rrset: first))
        } else if let match = rrsets.first(where: { $0.type == type }) {
            answer.answer.append(RecordSet(owner: owner, rrset: match))
        } else if let cname = rrsets.first(where: { $0.type == .cname }), let target = cname.targets.first {
            answer.answer.append(RecordSet(owner: owner, rrset: cname))
            if chain + 1 < Self.maxChain, target.isSubdomain(of: apex) {
                resolve(target, type, into: &answer, chain: chain + 1)
            }
        } else {
            answer.authority = [negativeSOA]
        }
    }

    /// The topmost zone cut between the apex (exclusive) and `name` (inclusive, unless DS is
    /// asked, whose answer lives in the parent).
    private func delegation(above name: DNSName, type: RRType) -> (owner: DNSName, ns: RRset)? {
        var chain: [DNSName] = []
        var current = name
        while current.wire.count > apex.wire.count {
            chain.append(current)
            current = current.parent
        }
        for candidate in chain.reversed() {
            if candidate == name && type == .ds { break }
            if let ns = nodes[candidate]?.first(where: { $0.type == .ns }) { return (candidate, ns) }
        }
        return nil
    }

    private func glue(for ns: RRset) -> [RecordSet] {
        ns.targets.flatMap { target -> [RecordSet] in
            guard let rrsets = nodes[target] else { return [] }
            return rrsets.filter { $0.type == .a || $0.type == .aaaa }.map { RecordSet(owner: target, rrset: $0) }
        }
    }
}

extension [RRset] {
    /// Adds `rrset`, merged into the one of its type when there is one.
    fileprivate mutating func withMerged(_ rrset: RRset) {
        if let i = firstIndex(where: { $0.type == rrset.type }) {
            self[i] = self[i].merging(rrset)
        } else {
            append(rrset)
        }
    }
}
