import ZoneLinkCore

/// The records of one name and type, with their data in wire form (names uncompressed).
///
/// Immutable and shared by reference: an answer holds it with one retain, however many
/// records it has.
public final class RRset: Sendable {
    public let type: RRType
    public let ttl: UInt32
    public let rdata: [[UInt8]]
    /// Names inside the data that answering follows: a CNAME's target, NS hosts, MX exchanges.
    public let targets: [DNSName]
    /// On an endpoint's generated A records: which ENI each record is, so that answering can
    /// apply zone affinity and health. Nil on every other rrset.
    public let enis: ENISelection?

    public init(type: RRType, ttl: UInt32, rdata: [[UInt8]], targets: [DNSName] = [], enis: ENISelection? = nil) {
        self.type = type
        self.ttl = ttl
        self.rdata = rdata
        self.targets = targets
        self.enis = enis
    }

    /// This rrset with `other`'s records added, at the lower of the two TTLs (RFC 2181 section 5.2).
    func merging(_ other: RRset) -> RRset {
        RRset(type: type, ttl: min(ttl, other.ttl), rdata: rdata + other.rdata, targets: targets + other.targets, enis: enis)
    }
}

/// Which ENI each record of an rrset stands for, and whether its service asks for affinity.
public struct ENISelection: Sendable {
    public var enis: [ENIID]
    public var zoneAffinity: Bool
    /// What a client of each of the ENIs' zones is answered while every ENI is healthy, worked
    /// out once when the catalog is built: the common case costs a scan of a few zones. A
    /// short array, not a dictionary: an endpoint has an ENI in a handful of zones, and a
    /// dictionary per endpoint was a tenth of building a 100,000-endpoint catalog.
    private var healthyByZone: [(zone: String, rdata: [[UInt8]])] = []
    /// The answer to a client of no zone, or of a zone none of the ENIs is in, while every
    /// ENI is healthy: every record.
    private var healthyElsewhere: [[UInt8]]?

    public init(enis: [ENIID], zoneAffinity: Bool) {
        self.enis = enis
        self.zoneAffinity = zoneAffinity
    }

    /// Works out the answers while every ENI is healthy, for a client of each zone and of
    /// none; `rdata` are the records, one per ENI, in the ENIs' order.
    mutating func answerWhileHealthy(_ rdata: [[UInt8]]) {
        healthyByZone = []
        for eni in enis where !healthyByZone.contains(where: { $0.zone == eni.zone }) {
            // `choose(clientZone: eni.zone, health: .allHealthy)`, worked out directly (this runs
            // for every endpoint name at every start and reload): the zone's ENIs, in order, then
            // without affinity every other ENI, in order.
            var kept: [[UInt8]] = []
            for (i, other) in enis.enumerated() where other.zone == eni.zone { kept.append(rdata[i]) }
            if !zoneAffinity {
                for (i, other) in enis.enumerated() where other.zone != eni.zone { kept.append(rdata[i]) }
            }
            healthyByZone.append((eni.zone, kept))
        }
        healthyElsewhere = rdata
    }

    /// The records a client of `clientZone` is answered while every ENI is healthy, when
    /// `answerWhileHealthy` has worked them out.
    func answerWhileHealthy(clientZone: String?) -> [[UInt8]]? {
        if let clientZone, let known = healthyByZone.first(where: { $0.zone == clientZone }) { return known.rdata }
        // A client of a zone no ENI is in is answered as one of no zone: every ENI, in order
        // (`ZoneAffinity.choice` keeps the client's zone's first, and there are none).
        return healthyElsewhere
    }

    /// The indices of the records this client is answered, in answer order (`ZoneAffinity.choose`).
    func choose(clientZone: String?, health: ZoneHealth) -> [Int] {
        ZoneAffinity.choose(enis, clientZone: clientZone, affinity: zoneAffinity, health: health)
    }
}

/// A name and an rrset of it, as it goes into a section of a response: all of its records,
/// or the ones zone affinity chose.
public struct RecordSet: Sendable {
    public var owner: DNSName
    public var rrset: RRset
    /// The records to send: `rrset.rdata`, or the subset chosen for this client.
    public var records: [[UInt8]]

    public init(owner: DNSName, rrset: RRset) {
        self.owner = owner
        self.rrset = rrset
        self.records = rrset.rdata
    }
}

/// What the answer engine decided; the writer encodes it, truncating if it must.
public struct Answer: Sendable {
    public var rcode: RCode
    public var authoritative: Bool
    public var answer: [RecordSet]
    public var authority: [RecordSet]
    public var additional: [RecordSet]
    /// For EDNS Client Subnet: the prefix length of the client network the answer was chosen
    /// for (0 when it would be the same for any client).
    public var clientSubnetScope: UInt8 = 0

    public init(
        rcode: RCode, authoritative: Bool, answer: [RecordSet] = [], authority: [RecordSet] = [],
        additional: [RecordSet] = []
    ) {
        self.rcode = rcode
        self.authoritative = authoritative
        self.answer = answer
        self.authority = authority
        self.additional = additional
    }

    public static let refused = Answer(rcode: .refused, authoritative: false)
}
