// The generated questions of the differential test (issue 2, test 4), here so that the
// integration test (ZoneLink against NSD) and the unit test of prepared answers (prepared
// against the engine) ask exactly the same ones.

/// One generated question: a name in presentation form (mixed case for about a third) and a
/// type number.
public struct CorpusQuestion: Sendable, CustomStringConvertible {
    public var name: String
    public var type: UInt16
    public var description: String { "\(name) TYPE\(type)" }

    public init(name: String, type: UInt16) {
        self.name = name
        self.type = type
    }
}

/// The questions about `zones/local.yaml` (VPC 1's view) and `zones/example.internal.zone`.
public enum DifferentialCorpus {
    public static let domain = "privatelink.internal"
    public static let region = "eu-central-1.privatelink.internal"
    public static let endpoint = "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    public static let service = "epsrv-frankfurt1.eu-central-1.privatelink.internal"
    public static let endpointZoneA = "ep-consumer1-eu-central-1a.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    public static let endpointZoneB = "ep-consumer1-eu-central-1b.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    public static let unknownEndpoint = "ep-nope.epsrv-frankfurt1.eu-central-1.privatelink.internal"

    enum T {
        static let a: UInt16 = 1, ns: UInt16 = 2, cname: UInt16 = 5, soa: UInt16 = 6, mx: UInt16 = 15, txt: UInt16 = 16
        static let aaaa: UInt16 = 28
    }

    static let perZone = [endpointZoneA, endpointZoneB]
    static let allTypes: [UInt16] = [T.a, T.aaaa, T.txt, T.mx, T.ns, T.soa, T.cname]

    static func randomLabel(_ rng: inout SplitMix64) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-")
        let n = Int.random(in: 1...12, using: &rng)
        var s = String(alphabet[Int.random(in: 0..<26, using: &rng)])
        for _ in 1..<n { s.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]) }
        if s.hasSuffix("-") { s.append("z") }
        return s
    }

    static func randomCase(_ name: String, _ rng: inout SplitMix64) -> String {
        String(name.map { c in Bool.random(using: &rng) ? Character(c.uppercased()) : c })
    }

    /// A fixed list of interesting questions, then random ones up to `count`, all from `seed`.
    /// The affinity names' A questions are left out (their answers depend on the client).
    public static func generate(seed: UInt64, count: Int) -> [CorpusQuestion] {
        var rng = SplitMix64(seed: seed)
        var out: [CorpusQuestion] = []
        func add(_ name: String, _ types: [UInt16]) { for t in types { out.append(CorpusQuestion(name: name, type: t)) } }

        // Generated zone: per-zone names, NODATA on the affinity names, apex, empty non-terminals.
        for n in perZone { add(n, [T.a, T.aaaa, T.txt, T.mx, T.ns, T.soa, T.cname]) }
        for n in [endpoint, service] { add(n, [T.aaaa, T.txt, T.mx]) }
        add(domain, [T.soa, T.ns, T.a, T.aaaa, T.txt, T.mx])
        add(region, [T.a, T.aaaa, T.soa, T.ns, T.txt])
        add("ns." + domain, [T.a, T.aaaa])
        add(unknownEndpoint, [T.a, T.aaaa])
        add("ep-consumer1-eu-central-1c." + service, [T.a])
        add("epsrv-other." + region, [T.a])
        add("ep-consumer1.epsrv-other." + region, [T.a])
        add("x.eu-west-1." + domain, [T.a])
        add("eu-west-1." + domain, [T.a])
        // Static zone.
        let z = "example.internal"
        add(z, [T.soa, T.ns, T.mx, T.txt, T.a, T.aaaa])
        add("www." + z, [T.a, T.aaaa, T.mx, T.txt, T.cname])
        add("mail." + z, [T.a, T.aaaa])
        add("ns1." + z, [T.a, T.aaaa])
        add("api." + z, [T.a, T.aaaa, T.cname, T.txt, T.mx])
        add("docs." + z, [T.a, T.cname, T.aaaa])
        add("x.apps." + z, [T.a, T.aaaa, T.txt])
        add("a.b.apps." + z, [T.a])
        add("*.apps." + z, [T.a])
        add("apps." + z, [T.a, T.aaaa])
        add("lab." + z, [T.ns, T.a])
        add("x.lab." + z, [T.a])
        add("ns.lab." + z, [T.a])
        add("deep.x.lab." + z, [T.aaaa])
        add("big." + z, [T.a, T.aaaa])
        add("nope." + z, [T.a])
        add("x.www." + z, [T.a])

        // Random ones: existing names with random types, and NXDOMAIN names at various depths.
        let existing = perZone + [domain, region, "ns." + domain,
                                  z, "www." + z, "mail." + z, "ns1." + z, "api." + z, "docs." + z, "apps." + z,
                                  "big." + z, "lab." + z]
        let parents = [domain, region, service] + perZone + [z, "www." + z, "apps." + z, "lab." + z, "api." + z]
        while out.count < count {
            let roll = Int.random(in: 0..<10, using: &rng)
            var name: String
            var type = allTypes[Int.random(in: 0..<allTypes.count, using: &rng)]
            switch roll {
            case 0...2:
                name = existing[Int.random(in: 0..<existing.count, using: &rng)]
            case 3...7:
                let parent = parents[Int.random(in: 0..<parents.count, using: &rng)]
                let depth = Int.random(in: 1...3, using: &rng)
                name = parent
                for _ in 0..<depth { name = randomLabel(&rng) + "." + name }
            default:
                name = perZone[Int.random(in: 0..<perZone.count, using: &rng)]
                type = [T.a, T.aaaa, T.txt, T.mx][Int.random(in: 0..<4, using: &rng)]
            }
            if type == T.a && (name == endpoint || name == service) { continue }
            out.append(CorpusQuestion(name: name, type: type))
        }
        // Mixed case for about a third of them.
        for i in out.indices where Int.random(in: 0..<3, using: &rng) == 0 {
            out[i].name = randomCase(out[i].name, &rng)
        }
        return out
    }
}
