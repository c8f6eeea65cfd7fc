/// An authoritative zone in memory: every name that exists in it, with its rrsets.
///
/// Answering follows RFC 1034 section 4.3.2 with the refinements operators expect of NSD:
/// referrals at delegations, CNAME chains followed inside the zone, wildcards (RFC 4592),
/// empty non-terminals that exist (NODATA, not NXDOMAIN), and minimal responses.
/// It does not do DNSSEC, DNAME or zone transfers.
public struct Zone: Sendable {
    public let apex: DNSName
    /// Every name in the zone, empty non-terminals included (with no rrsets), as the zone was
    /// built. A zone made by `adding` shares this table with the zone it was made from.
    private let nodes: [DNSName: [RRset]]
    /// What `adding` put on top of `nodes`: the names it added or changed, with all their
    /// rrsets (those of `nodes` at the same name merged in). Looked up first.
    private let added: [DNSName: [RRset]]
    let hasDelegations: Bool
    let hasWildcards: Bool
    /// The SOA as it goes into negative answers: TTL the lesser of its own and its minimum (RFC 2308 section 3).
    let negativeSOA: RecordSet

    /// CNAME chains are followed at most this far, which also ends loops.
    static let maxChain = 8

    /// Builds a zone from (owner, rrset) pairs that all lie at or below `apex`, which must hold a SOA.
    /// `emptyNames` exist with no records of their own (NODATA rather than NXDOMAIN).
    public init?(apex: DNSName, records: [(DNSName, RRset)], emptyNames: [DNSName] = []) {
        var nodes = Nodes(apex: apex, capacity: records.count + emptyNames.count + 1)
        for (owner, rrset) in records where owner.isSubdomain(of: apex) {
            nodes.add(rrset, at: owner)
        }
        for owner in emptyNames where owner.isSubdomain(of: apex) {
            nodes.addName(owner)
        }
        self.init(nodes)
    }

    /// A zone from a node table built by its owner (`GeneratedNames`, for the hundreds of
    /// thousands of names of a large catalog, which it knows how to add without the checks
    /// `init(apex:records:emptyNames:)` makes per record).
    init?(_ nodes: Nodes) {
        guard let soa = nodes.table[nodes.apex]?.first(where: { $0.type == .soa }) else { return nil }
        self.init(apex: nodes.apex, nodes: nodes.table, added: [:], soa: soa)
    }

    /// This zone with `records` (at or below the apex) added, as if they had been among the
    /// records it was built from. A view adds its few service names to the zone every view
    /// shares this way: the shared names (hundreds of thousands at 100,000 endpoints) are
    /// neither built again nor copied per VPC, only the added names are kept apart.
    func adding(_ records: [(DNSName, RRset)]) -> Zone? {
        var added = self.added
        // What the zone made so far holds at `name` (two records of one call may share a name).
        func existing(_ name: DNSName) -> [RRset]? { added[name] ?? nodes[name] }
        for (owner, rrset) in records where owner.isSubdomain(of: apex) {
            let known = existing(owner)
            var rrsets = known ?? []
            rrsets.withMerged(rrset)
            added[owner] = rrsets
            guard known == nil else { continue }
            var ancestor = owner.parent
            while ancestor.wire.count > apex.wire.count, existing(ancestor) == nil {
                added[ancestor] = []
                ancestor = ancestor.parent
            }
        }
        guard let soa = (added[apex] ?? nodes[apex])?.first(where: { $0.type == .soa }) else { return nil }
        return Zone(apex: apex, nodes: nodes, added: added, soa: soa, inherited: (hasDelegations, hasWildcards))
    }

    /// `inherited`: the flags of `nodes`, already known when only `added` is new.
    private init?(
        apex: DNSName, nodes: [DNSName: [RRset]], added: [DNSName: [RRset]], soa: RRset,
        inherited: (delegations: Bool, wildcards: Bool)? = nil
    ) {
        guard let data = soa.rdata.first, data.count >= 20 else { return nil }
        let minimum = data.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let negative = RRset(type: .soa, ttl: min(soa.ttl, minimum), rdata: [data])
        self.apex = apex
        self.nodes = nodes
        self.added = added
        self.negativeSOA = RecordSet(owner: apex, rrset: negative)
        func delegates(_ entry: (key: DNSName, value: [RRset])) -> Bool {
            entry.key != apex && entry.value.contains { $0.type == .ns }
        }
        func isWildcard(_ name: DNSName) -> Bool {
            name.wire.count > 2 && name.wire[0] == 1 && name.wire[1] == UInt8(ascii: "*")
        }
        let base = inherited ?? (nodes.contains(where: delegates), nodes.keys.contains(where: isWildcard))
        self.hasDelegations = base.delegations || added.contains(where: delegates)
        self.hasWildcards = base.wildcards || added.keys.contains(where: isWildcard)
    }

    /// The rrsets at `name` (empty for an empty non-terminal), nil when the name does not exist.
    func lookup(_ name: DNSName) -> [RRset]? {
        if !added.isEmpty, let rrsets = added[name] { return rrsets }
        return nodes[name]
    }

    /// Every name of the zone, each once, in no particular order: what transfers and exports walk.
    var owners: [DNSName] {
        guard !added.isEmpty else { return Array(nodes.keys) }
        return Array(nodes.keys.filter { added[$0] == nil }) + Array(added.keys)
    }

    /// The table a zone is built in: every name with its rrsets, and the empty non-terminals
    /// above each (RFC 4592 section 2.2.2: they exist, with no records).
    struct Nodes {
        let apex: DNSName
        private(set) var table: [DNSName: [RRset]]

        init(apex: DNSName, capacity: Int) {
            self.apex = apex
            table = [apex: []]
            table.reserveCapacity(capacity)
        }

        /// Adds `rrset` at `owner` (merged with one of its type already there), and the empty
        /// non-terminals above it.
        mutating func add(_ rrset: RRset, at owner: DNSName) {
            let known = table[owner] != nil
            table[owner, default: []].withMerged(rrset)
            if !known { addAncestors(of: owner) }
        }

        /// Adds `rrset` at `owner`, whose parent the caller has put in the table already: the
        /// ancestors are not walked (one hash lookup per record, not one per label).
        mutating func addLeaf(_ rrset: RRset, at owner: DNSName) {
            table[owner, default: []].withMerged(rrset)
        }

        /// Adds `owner` as a name with no records of its own (NODATA rather than NXDOMAIN).
        mutating func addName(_ owner: DNSName) {
            guard table[owner] == nil else { return }
            table[owner] = []
            addAncestors(of: owner)
        }

        private mutating func addAncestors(of owner: DNSName) {
            var ancestor = owner.parent
            while ancestor.wire.count > apex.wire.count, table[ancestor] == nil {
                table[ancestor] = []
                ancestor = ancestor.parent
            }
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
        if let rrsets = lookup(name) {
            respond(from: rrsets, owner: name, type, into: &answer, chain: chain)
            return
        }
        if hasWildcards {
            var encloser = name.parent
            while lookup(encloser) == nil { encloser = encloser.parent }
            if let rrsets = lookup(encloser.prepending([UInt8(ascii: "*")])) {
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
            if let ns = lookup(candidate)?.first(where: { $0.type == .ns }) { return (candidate, ns) }
        }
        return nil
    }

    private func glue(for ns: RRset) -> [RecordSet] {
        ns.targets.flatMap { target -> [RecordSet] in
            guard let rrsets = lookup(target) else { return [] }
            return rrsets.filter { $0.type == .a || $0.type == .aaaa }.map { RecordSet(owner: target, rrset: $0) }
        }
    }
}

extension [RRset] {
    /// Adds `rrset`, merged into the one of its type when there is one.
    mutating func withMerged(_ rrset: RRset) {
        if let i = firstIndex(where: { $0.type == rrset.type }) {
            self[i] = self[i].merging(rrset)
        } else {
            append(rrset)
        }
    }
}
