// Issue 2, test 1: the protocol as real clients (dig, kdig, drill) see it, over UDP and TCP,
// plus the contract details a stock client cannot express (raw packets, decoded by ldns).
import Foundation
import ZoneLinkTestSupport
import Testing

enum Names {
    static let domain = "privatelink.internal"
    static let endpoint = "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    static let service = "epsrv-frankfurt1.eu-central-1.privatelink.internal"
    static let endpointZoneA = "ep-consumer1-eu-central-1a.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    static let endpointZoneB = "ep-consumer1-eu-central-1b.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    static let unknownEndpoint = "ep-nope.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    static let eniA = "127.10.1.4"    // allocated in vsw-1a (eu-central-1a)
    static let eniB = "127.10.2.50"   // declared in vsw-1b (eu-central-1b)
    static let sourceZoneA = "127.10.1.10"
    static let sourceZoneB = "127.10.2.10"
    /// The generated zone's SOA; its serial is the client's view's (persisted, from the
    /// clock: `docs/dns.md`), so checks compare it as SERIAL (`Check.soa`).
    static let generatedSOA = "ns.privatelink.internal. hostmaster.privatelink.internal. SERIAL 3600 600 86400 60"
    static let staticSOA = "ns1.example.internal. hostmaster.example.internal. 2026112701 3600 600 604800 300"
}

/// One query of the client matrix and what its answer must be.
struct ClientCase: Sendable {
    enum Listener: Sendable { case pinned, source }
    var label: String
    var name: String
    var type: String
    var listener: Listener
    var source: String?
    var extra: [String] = []
    var check: @Sendable (ClientAnswer) -> [String]
}

/// Checks shared by the cases; each returns the problems found (empty: fine).
enum Check {
    static func positive(_ type: String, _ expected: [String], aa: Bool = true, ttl: Int? = nil,
                         owner: String? = nil) -> @Sendable (ClientAnswer) -> [String] {
        { a in
            var p: [String] = []
            if a.rcode != "NOERROR" { p.append("rcode \(a.rcode), expected NOERROR") }
            if a.aa != aa { p.append("AA \(a.aa), expected \(aa)") }
            let got = type == "SOA" ? a.answerData(type).map { soa($0, like: expected.first ?? "") } : a.answerData(type)
            if got != expected.sorted() { p.append("\(type) answer \(got), expected \(expected.sorted())") }
            if let ttl, let bad = a.answer.first(where: { $0.ttl != ttl }) { p.append("TTL \(bad.ttl), expected \(ttl)") }
            if let owner, let bad = a.answer.first(where: { $0.owner.lowercased() != owner.lowercased() + "." }) {
                p.append("owner \(bad.owner), expected \(owner).")
            }
            return p
        }
    }

    /// NODATA or NXDOMAIN: no answer, the zone's SOA in authority, AA set.
    static func negative(_ rcode: String, zone: String, soa: String) -> @Sendable (ClientAnswer) -> [String] {
        { a in
            var p: [String] = []
            if a.rcode != rcode { p.append("rcode \(a.rcode), expected \(rcode)") }
            if !a.aa { p.append("AA clear, expected set") }
            if !a.answer.isEmpty { p.append("answer \(a.answer), expected none") }
            let soas = a.authority.filter { $0.type == "SOA" }
            if soas.count != 1 || soas.first?.owner.lowercased() != zone + "." || soas.first.map({ Check.soa($0.rdata, like: soa) }) != soa {
                p.append("authority \(a.authority), expected exactly the SOA of \(zone) (\(soa))")
            }
            return p
        }
    }

    /// `rdata` with its serial written SERIAL when `expected` has it so, and the serial is a
    /// view's (not the catalog's counter, 1); else `rdata` as it is.
    static func soa(_ rdata: String, like expected: String) -> String {
        var fields = rdata.split(separator: " ").map(String.init)
        guard expected.split(separator: " ").dropFirst(2).first == "SERIAL", fields.count == 7, let serial = UInt32(fields[2]), serial > 1
        else { return rdata }
        fields[2] = "SERIAL"
        return fields.joined(separator: " ")
    }

    static func rcode(_ rcode: String) -> @Sendable (ClientAnswer) -> [String] {
        { a in a.rcode == rcode ? [] : ["rcode \(a.rcode), expected \(rcode)"] }
    }
}

enum ClientMatrix {
    static func cases(for tool: ClientTool) -> [ClientCase] {
        typealias C = ClientCase
        var cases: [C] = []
        // Zone affinity of the endpoint name and of the service name (VPC 1 has an endpoint of it).
        for (what, name) in [("endpoint", Names.endpoint), ("service", Names.service)] {
            cases += [
                C(label: "\(what) A via the listener pinned to zone b", name: name, type: "A", listener: .pinned,
                  check: Check.positive("A", [Names.eniB], ttl: 60)),
                C(label: "\(what) A via the pinned listener from a zone-a source", name: name, type: "A",
                  listener: .pinned, source: Names.sourceZoneA, check: Check.positive("A", [Names.eniB])),
                C(label: "\(what) A from 127.10.1.10 (zone a)", name: name, type: "A", listener: .source,
                  source: Names.sourceZoneA, check: Check.positive("A", [Names.eniA])),
                C(label: "\(what) A from 127.10.2.10 (zone b)", name: name, type: "A", listener: .source,
                  source: Names.sourceZoneB, check: Check.positive("A", [Names.eniB])),
                C(label: "\(what) A from 127.0.0.1 (no zone)", name: name, type: "A", listener: .source,
                  source: "127.0.0.1", check: Check.positive("A", [Names.eniA, Names.eniB])),
            ]
        }
        // Per-zone names ignore affinity.
        cases += [
            C(label: "per-zone name a via the pinned (zone b) listener", name: Names.endpointZoneA, type: "A",
              listener: .pinned, check: Check.positive("A", [Names.eniA])),
            C(label: "per-zone name a from zone b", name: Names.endpointZoneA, type: "A", listener: .source,
              source: Names.sourceZoneB, check: Check.positive("A", [Names.eniA])),
            C(label: "per-zone name a from zone a", name: Names.endpointZoneA, type: "A", listener: .source,
              source: Names.sourceZoneA, check: Check.positive("A", [Names.eniA])),
            C(label: "per-zone name a from no zone", name: Names.endpointZoneA, type: "A", listener: .source,
              source: "127.0.0.1", check: Check.positive("A", [Names.eniA])),
            C(label: "per-zone name b from zone a", name: Names.endpointZoneB, type: "A", listener: .source,
              source: Names.sourceZoneA, check: Check.positive("A", [Names.eniB])),
        ]
        // Negative answers, apex, case.
        cases += [
            C(label: "endpoint AAAA is NODATA", name: Names.endpoint, type: "AAAA", listener: .pinned,
              check: Check.negative("NOERROR", zone: Names.domain, soa: Names.generatedSOA)),
            C(label: "unknown endpoint is NXDOMAIN", name: Names.unknownEndpoint, type: "A", listener: .pinned,
              check: Check.negative("NXDOMAIN", zone: Names.domain, soa: Names.generatedSOA)),
            C(label: "apex SOA", name: Names.domain, type: "SOA", listener: .pinned,
              check: Check.positive("SOA", [Names.generatedSOA], ttl: 60)),
            C(label: "apex NS", name: Names.domain, type: "NS", listener: .source,
              check: Check.positive("NS", ["ns.privatelink.internal."], ttl: 60)),
            C(label: "upper-case endpoint name", name: Names.endpoint.uppercased(), type: "A", listener: .pinned,
              check: Check.positive("A", [Names.eniB])),
            C(label: "name outside every zone is REFUSED", name: "example.com", type: "A", listener: .pinned,
              check: Check.rcode("REFUSED")),
        ]
        // The static zone.
        cases += [
            C(label: "static www A", name: "www.example.internal", type: "A", listener: .pinned,
              check: Check.positive("A", ["127.0.0.80"], ttl: 300)),
            C(label: "static api CNAME chain", name: "api.example.internal", type: "A", listener: .source,
              check: { a in
                  var p = Check.positive("A", ["127.0.0.80"])(a)
                  let cname = a.answer.filter { $0.type == "CNAME" }.map { "\($0.owner.lowercased()) \($0.rdata.lowercased())" }
                  if cname != ["api.example.internal. www.example.internal."] { p.append("CNAME records \(cname), expected api -> www") }
                  return p
              }),
            C(label: "static wildcard x.apps", name: "x.apps.example.internal", type: "A", listener: .pinned,
              check: Check.positive("A", ["127.0.0.90"], owner: "x.apps.example.internal")),
            C(label: "static referral below lab", name: "host.lab.example.internal", type: "A", listener: .pinned,
              check: { a in
                  var p: [String] = []
                  if a.rcode != "NOERROR" { p.append("rcode \(a.rcode), expected NOERROR") }
                  if a.aa { p.append("AA set, expected clear (referral)") }
                  if !a.answer.isEmpty { p.append("answer \(a.answer), expected none") }
                  let ns = a.authority.map { "\($0.owner.lowercased()) \($0.type) \($0.rdata.lowercased())" }
                  if ns != ["lab.example.internal. NS ns.lab.example.internal."] { p.append("authority \(ns), expected the NS of lab") }
                  let glue = a.additional.filter { $0.type == "A" }.map { "\($0.owner.lowercased()) \($0.rdata)" }
                  if glue != ["ns.lab.example.internal. 127.0.0.53"] { p.append("additional \(glue), expected the glue of ns.lab") }
                  return p
              }),
        ]
        if tool == .dig {
            cases.append(C(label: "opcode STATUS is NOTIMP", name: "www.example.internal", type: "A",
                           listener: .pinned, extra: ["+opcode=status"], check: Check.rcode("NOTIMP")))
        }
        return cases
    }

    static func run(_ tool: ClientTool, _ transport: Transport) async throws {
        try await withZoneLink(tag: "\(tool.rawValue)-\(transport)") { server in
            for c in cases(for: tool) {
                let port = c.listener == .pinned ? server.pinnedPort : server.sourcePort
                let (answer, result) = try await runClient(tool, name: c.name, type: c.type, port: port,
                                                           source: c.source, transport: transport, extra: c.extra)
                guard let answer else {
                    Issue.record("\(tool.rawValue) \(transport) \(c.label): no response.\n\(result.summary)")
                    continue
                }
                let problems = c.check(answer)
                #expect(problems.isEmpty, "\(tool.rawValue) \(transport) \(c.label): \(c.name) \(c.type) -> \(problems.joined(separator: "; "))\n\(cap(result.stdout, 2500))")
            }
            #expect(server.isRunning)
        }
    }
}

@Suite("Protocol via real clients", .timeLimit(.minutes(3)))
struct ProtocolClientTests {
    // Skipped (not passed) when the client is not installed: dnsutils.
    @Test(.enabled(if: Tools.dig != nil, "dig (dnsutils) is not installed"), arguments: Transport.allCases)
    func dig(_ transport: Transport) async throws {
        try await ClientMatrix.run(.dig, transport)
    }

    // Skipped when kdig (knot-dnsutils) is missing.
    @Test(.enabled(if: Tools.kdig != nil, "kdig (knot-dnsutils) is not installed"), arguments: Transport.allCases)
    func kdig(_ transport: Transport) async throws {
        try await ClientMatrix.run(.kdig, transport)
    }

    // Skipped when drill (ldnsutils) is missing.
    @Test(.enabled(if: Tools.drill != nil, "drill (ldnsutils) is not installed"), arguments: Transport.allCases)
    func drill(_ transport: Transport) async throws {
        try await ClientMatrix.run(.drill, transport)
    }
}

@Suite("Protocol details on raw packets", .timeLimit(.minutes(3)))
struct RawProtocolTests {
    @Test("Opcodes other than QUERY get NOTIMP; case is echoed; QR=1 is dropped; header rules")
    func headerRules() async throws {
        try await withZoneLink(tag: "raw") { server in
            let port = server.pinnedPort
            for (opcode, label) in [(UInt8(1), "IQUERY"), (2, "STATUS"), (4, "NOTIFY"), (5, "UPDATE")] {
                let q = DNSQuery.build(id: 0x4000 + UInt16(opcode), name: "www.example.internal", type: RRType.A, opcode: opcode)
                let reply = try await DNSClient.udp(q, port: port)
                let r = reply.flatMap { DNSResponse.parse($0) }
                #expect(r?.rcode == Rcode.NOTIMP && r?.qr == true && r?.opcode == Int(opcode),
                        "opcode \(label) (\(opcode)): expected QR=1, same opcode, NOTIMP; got \(r.map { "\($0)" } ?? (reply == nil ? "no reply" : "unparsable reply \(reply!)"))")
            }

            // An unknown opcode is NOTIMP whatever follows (RFC 6895): with no question, and
            // with every header flag set, as compliance testers send it.
            for (label, flags1) in [("no flags", UInt8(0)), ("every flag", UInt8(0xFF))] {
                var bare = DNSQuery.header(id: 0x4F00, opcode: 15, qd: 0)
                bare[2] |= 0x07  // AA, TC, RD
                bare[3] = flags1
                let reply = try await DNSClient.udp(bare, port: port)
                #expect(reply.map { $0.count == 12 && $0[2] & 0x80 != 0 && ($0[2] >> 3) & 0x0F == 15 && $0[3] & 0x0F == UInt8(Rcode.NOTIMP) } == true,
                        "opcode 15, no question, \(label): expected a 12-byte NOTIMP header with opcode 15; got \(reply.map { "\(Array($0))" } ?? "nothing")")
            }

            // Mixed case: answered, and the question echoes the query's case byte for byte.
            let mixed = "Ep-CONSUMER1.EpSrv-Frankfurt1.EU-Central-1.PrivateLink.Internal"
            let q = DNSQuery.build(id: 0x1234, name: mixed, type: RRType.A, edns: 1232)
            let reply = try #require(try await DNSClient.udp(q, port: port), "no reply to \(mixed) A")
            let r = try #require(DNSResponse.parse(reply), "unparsable reply to \(mixed) A")
            #expect(r.rcode == Rcode.NOERROR && r.aa && !r.ra, "\(mixed) A: expected NOERROR, AA, RA clear; got\n\(r)")
            #expect(r.answerData("A") == [Names.eniB], "\(mixed) A via the zone-b listener: got\n\(r)")
            let qname = DNSQuery.encodeName(mixed)
            #expect(reply.count >= 12 + qname.count && Array(reply[12..<(12 + qname.count)]) == qname,
                    "the question must echo the query's name in its original case; got \(r.question)")
            #expect(r.hasOPT && r.ednsPayload == 1232, "response OPT must advertise 1232; got hasOPT=\(r.hasOPT) payload=\(r.ednsPayload)")

            // QR=1 in a query: dropped.
            var qr = DNSQuery.build(id: 0x5151, name: "www.example.internal", type: RRType.A)
            qr[2] |= 0x80
            #expect(try await DNSClient.udp(qr, port: port, timeout: 1) == nil, "a message with QR=1 must be dropped")

            // qdcount 0 and 2: FORMERR.
            let qd0 = DNSQuery.header(id: 0x6060, qd: 0)
            let r0 = try await DNSClient.udp(qd0, port: port).flatMap { DNSResponse.parse($0) }
            #expect(r0?.rcode == Rcode.FORMERR, "qdcount 0: expected FORMERR; got \(r0.map { "\($0)" } ?? "nothing")")
            var qd2 = DNSQuery.header(id: 0x6262, qd: 2)
            for n in ["www.example.internal", "mail.example.internal"] { qd2 += DNSQuery.encodeName(n) + [0, 1, 0, 1] }
            let reply2 = try await DNSClient.udp(qd2, port: port)
            #expect(reply2.map { $0.count >= 12 && $0[2] & 0x80 != 0 && $0[3] & 0x0F == UInt8(Rcode.FORMERR) } == true,
                    "qdcount 2: expected FORMERR; got \(reply2.map { "\(Array($0.prefix(12)))" } ?? "nothing")")

            // Malformed but with a readable header: FORMERR. Shorter than a header: dropped.
            let www = DNSQuery.build(id: 0x6464, name: "www.example.internal", type: RRType.A)
            let malformed: [(String, [UInt8])] = [
                ("two OPT records", { var q = DNSQuery.build(id: 0x6565, name: "www.example.internal", type: RRType.A, edns: 1232)
                                      q[11] = 2; return q + DNSQuery.opt(payload: 1232) }()),
                ("label past the end", DNSQuery.header(id: 0x6666) + [20, 0x61, 0x62, 0x63]),
                ("compression loop in the question", DNSQuery.header(id: 0x6767) + [0xC0, 0x0C, 0, 1, 0, 1]),
                ("question cut short", Array(www.prefix(www.count - 3))),
            ]
            for (label, message) in malformed {
                let reply = try await DNSClient.udp(message, port: port, timeout: 1)
                let ok = reply.map { $0.count >= 12 && $0[0] == message[0] && $0[1] == message[1]
                    && $0[2] & 0x80 != 0 && $0[3] & 0x0F == UInt8(Rcode.FORMERR) } ?? false
                #expect(ok, "\(label): expected FORMERR; got \(reply.map { "\(Array($0.prefix(16)))" } ?? "nothing")")
            }
            #expect(try await DNSClient.udp(Array(www.prefix(11)), port: port, timeout: 1) == nil,
                    "a message shorter than a header must be dropped")

            // Class other than IN: REFUSED.
            let ch = DNSQuery.build(id: 0x7070, name: "www.example.internal", type: RRType.A, qclass: 3)
            let rch = try await DNSClient.udp(ch, port: port).flatMap { DNSResponse.parse($0) }
            #expect(rch?.rcode == Rcode.REFUSED, "class CH: expected REFUSED; got \(rch.map { "\($0)" } ?? "nothing")")

            // EDNS version 1: BADVERS (extended rcode 16); DO copied.
            let v1 = DNSQuery.build(id: 0x7171, name: "www.example.internal", type: RRType.A, edns: 1232, ednsVersion: 1)
            let rv1 = try await DNSClient.udp(v1, port: port).flatMap { DNSResponse.parse($0) }
            #expect(rv1?.fullRcode == 16, "EDNS version 1: expected BADVERS (16); got \(rv1.map { "\($0)" } ?? "nothing")")
            let dnssec = DNSQuery.build(id: 0x7272, name: "www.example.internal", type: RRType.A, edns: 1232, doBit: true)
            let rdo = try await DNSClient.udp(dnssec, port: port).flatMap { DNSResponse.parse($0) }
            #expect(rdo?.ednsDO == true && rdo?.rcode == Rcode.NOERROR, "DO bit must be copied; got \(rdo.map { "\($0)" } ?? "nothing")")
        }
    }

    /// Health checks feed DNS: with ECS 2 and ECS 3 answering (the harness's `BackendListeners`),
    /// zone b stays healthy once the probes have run, and its listener still gets only its ENI.
    @Test("Zone affinity holds after unhealthyThreshold health-check intervals with the backends up")
    func affinityOutlastsHealthChecks() async throws {
        try await withZoneLink(tag: "health") { server in
            // clb-1b: interval 2 s, unhealthyThreshold 3; one interval of margin.
            try await Task.sleep(for: .seconds(8))
            let q = DNSQuery.build(id: 0x2468, name: Names.endpoint, type: RRType.A)
            let r = try await DNSClient.udp(q, port: server.pinnedPort).flatMap { DNSResponse.parse($0) }
            #expect(r?.answerData("A") == [Names.eniB],
                    "after 8 s of health checks: expected only the zone-b ENI; got \(r.map { "\($0)" } ?? "nothing")\n\(server.logs)")
        }
    }

    @Test("Negative TTLs, ANY, empty non-terminals, the service name in a VPC without an endpoint")
    func negativeAnswers() async throws {
        // A third listener answering as a client of VPC 2, which has no endpoint of the service.
        let vpc2Port = try LoopbackPorts.free()
        let addListener: (String) -> String = { yaml in
            yaml.replacingOccurrences(of: "\n  zoneFiles:", with: "\n    - address: 127.0.0.1:\(vpc2Port)\n      vpc: vpc-2\n  zoneFiles:")
        }
        try await withZoneLink(tag: "neg", mutate: addListener) { server in
            #expect(server.config.yaml.contains("127.0.0.1:\(vpc2Port)"), "could not add a VPC 2 listener to the test config")
            let svc = DNSQuery.build(id: 0x0C0C, name: Names.service, type: RRType.A, edns: 1232)
            let rs = try await DNSClient.udp(svc, port: vpc2Port, timeout: 3).flatMap { DNSResponse.parse($0) }
            #expect(rs?.rcode == Rcode.NOERROR && rs?.aa == true && rs?.answer.isEmpty == true && rs?.authority.map(\.type) == ["SOA"],
                    "\(Names.service) A as a client of VPC 2 (no endpoint of the service): expected NODATA; got \(rs.map { "\($0)" } ?? "nothing")")
            let port = server.sourcePort
            func ask(_ name: String, _ type: UInt16) async throws -> DNSResponse? {
                let q = DNSQuery.build(id: UInt16.random(in: 1...0xFFFE), name: name, type: type, edns: 1232)
                return try await DNSClient.udp(q, port: port).flatMap { DNSResponse.parse($0) }
            }
            // RFC 2308 negative TTL: min(SOA TTL, SOA minimum).
            let nx = try await ask("nope.example.internal", RRType.A)
            #expect(nx?.rcode == Rcode.NXDOMAIN && nx?.authority.first?.type == "SOA" && nx?.authority.first?.ttl == 300,
                    "nope.example.internal A: expected NXDOMAIN, SOA TTL 300; got \(nx.map { "\($0)" } ?? "nothing")")
            let nx2 = try await ask("nope.eu-central-1.privatelink.internal", RRType.A)
            #expect(nx2?.rcode == Rcode.NXDOMAIN && nx2?.authority.map(\.type) == ["SOA"] && nx2?.authority.first?.ttl == 60,
                    "nope.eu-central-1.privatelink.internal A: expected NXDOMAIN, SOA TTL 60; got \(nx2.map { "\($0)" } ?? "nothing")")
            // Empty non-terminal and ns.D without address.
            for name in ["eu-central-1.privatelink.internal"] {
                let r = try await ask(name, RRType.A)
                #expect(r?.rcode == Rcode.NOERROR && r?.answer.isEmpty == true && r?.authority.map(\.type) == ["SOA"] && r?.aa == true,
                        "\(name) A (empty non-terminal): expected NODATA; got \(r.map { "\($0)" } ?? "nothing")")
            }
            // ANY: one rrset (RFC 8482), UDP and TCP alike.
            let anyQ = DNSQuery.build(id: 0x0A0A, name: "www.example.internal", type: RRType.ANY, edns: 1232)
            for (label, reply) in [("udp", try await DNSClient.udp(anyQ, port: port)),
                                   ("tcp", try await DNSClient.tcp(anyQ, port: port))] {
                let r = reply.flatMap { DNSResponse.parse($0) }
                let types = Set(r?.answer.map(\.type) ?? [])
                #expect(r?.rcode == Rcode.NOERROR && types.count == 1 && r?.aa == true,
                        "www.example.internal ANY over \(label): expected one rrset; got \(r.map { "\($0)" } ?? "nothing")")
            }
            // A positive answer carries no NS in authority (minimal responses).
            let www = try await ask("www.example.internal", RRType.A)
            #expect(www?.authority.isEmpty == true && www?.additional.isEmpty == true,
                    "www.example.internal A: expected minimal response; got \(www.map { "\($0)" } ?? "nothing")")
        }
    }
}
