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
        let empty = emptyNames.map { ($0, RRset?.none) }
        for (owner, rrset) in records.map({ ($0.0, Optional($0.1)) }) + empty where owner.isSubdomain(of: apex) {
            guard let rrset else {
                nodes[owner, default: []] += []
                Self.addAncestors(of: owner, below: apex, to: &nodes)
                continue
            }
            if let i = nodes[owner]?.firstIndex(where: { $0.type == rrset.type }) {
                nodes[owner]![i] = nodes[owner]![i].merging(rrset)
            } else {
                nodes[owner, default: []].append(rrset)
            }
            Self.addAncestors(of: owner, below: apex, to: &nodes)
        }
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
