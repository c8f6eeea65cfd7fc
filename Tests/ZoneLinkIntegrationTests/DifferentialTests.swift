// Issue 2, test 4: ZoneLink against NSD serving the same data (the exported view of VPC 1
// and the static zone file), on generated queries that zone affinity does not touch.
import Foundation
import ZoneLinkTestSupport
import Testing

struct GeneratedQuery: Sendable, CustomStringConvertible {
    var name: String
    var type: UInt16
    var description: String { "\(name) \(typeName(type))" }
}

func typeName(_ t: UInt16) -> String {
    switch t {
    case RRType.A: "A"
    case RRType.NS: "NS"
    case RRType.CNAME: "CNAME"
    case RRType.SOA: "SOA"
    case RRType.MX: "MX"
    case RRType.TXT: "TXT"
    case RRType.AAAA: "AAAA"
    default: "TYPE\(t)"
    }
}

enum QueryCorpus {
    /// The questions shared with the prepared-answer test (`DifferentialCorpus`).
    static func generate(seed: UInt64, count: Int) -> [GeneratedQuery] {
        DifferentialCorpus.generate(seed: seed, count: count).map { GeneratedQuery(name: $0.name, type: $0.type) }
    }

    /// Sends each query to both servers (UDP, EDNS 1232, RD clear) and returns the mismatches.
    /// `normalise` rewrites each record's canonical text before comparing (identity by default).
    static func compare(_ queries: [GeneratedQuery], portA: UInt16, labelA: String,
                        portB: UInt16, labelB: String,
                        normalise: (String) -> String = { $0 }) throws -> (compared: Int, mismatches: [String]) {
        let clientA = try UDPClient(), clientB = try UDPClient()
        var mismatches: [String] = []
        for (i, q) in queries.enumerated() {
            let msg = DNSQuery.build(id: UInt16(truncatingIfNeeded: 0x1000 + i), name: q.name, type: q.type, edns: 1232)
            let a = clientA.query(msg, port: portA, timeout: 2)
            let b = clientB.query(msg, port: portB, timeout: 2)
            let da = a.flatMap { DNSResponse.parse($0) }, db = b.flatMap { DNSResponse.parse($0) }
            var problems: [String] = []
            if let da, let db, let a, let b {
                if da.fullRcode != db.fullRcode {
                    problems.append("rcode \(Rcode.name(da.fullRcode)) vs \(Rcode.name(db.fullRcode))")
                }
                if da.aa != db.aa { problems.append("AA \(da.aa) vs \(db.aa)") }
                for (section, label) in [(1, "answer"), (2, "authority")] {
                    let sa = (DNSResponse.canonicalSection(a, section: section) ?? []).map(normalise)
                    let sb = (DNSResponse.canonicalSection(b, section: section) ?? []).map(normalise)
                    if sa != sb { problems.append("\(label) \(sa) vs \(sb)") }
                }
            } else {
                problems.append("\(labelA): \(a == nil ? "no reply" : (da == nil ? "unparsable" : "ok")), \(labelB): \(b == nil ? "no reply" : (db == nil ? "unparsable" : "ok"))")
            }
            if !problems.isEmpty {
                mismatches.append("query \(q) [\(labelA) vs \(labelB)]: \(problems.joined(separator: "; "))\n"
                    + "--- \(labelA):\n\(cap(da?.text ?? "-", 1500))\n--- \(labelB):\n\(cap(db?.text ?? "-", 1500))")
            }
        }
        return (queries.count, mismatches)
    }
}

@Suite("Differential against NSD", .timeLimit(.minutes(3)))
struct DifferentialTests {
    static let seed: UInt64 = 0x5EED_2026_0002

    // Skipped when NSD (Debian package nsd) is missing.
    @Test("ZoneLink and NSD agree on 400 generated queries", .enabled(if: Tools.nsd != nil, "nsd is not installed"))
    func againstNSD() async throws {
        try await withZoneLink(tag: "diff") { server in
            // The view of VPC 1, exported by the binary under test.
            let export = try await runProcess(Paths.zonelinkBinary.path,
                                              ["zone", "export", "--config", server.configURL.path, "--vpc", "vpc-1"],
                                              cwd: server.dir, timeout: 30)
            try #require(export.exited && export.status == 0 && !export.stdout.isEmpty,
                         "zonelink zone export failed:\n\(export.summary)")
            let zoneFile = server.dir.appendingPathComponent("privatelink.internal.zone")
            try export.stdout.write(to: zoneFile, atomically: true, encoding: .utf8)

            let nsd = try await offload {
                try NSDServer.start(zones: [("privatelink.internal", zoneFile.path), ("example.internal", Paths.staticZone.path)],
                                    probe: "privatelink.internal")
            }
            let queries = QueryCorpus.generate(seed: Self.seed, count: 400)
            let result = try await offload {
                // The exported zone's serial is the catalog's; the listener's is its view's.
                try QueryCorpus.compare(queries, portA: server.pinnedPort, labelA: "zonelink", portB: nsd.port, labelB: "nsd",
                                        normalise: SecondaryFixture.withoutSerial)
            }
            nsd.stop()
            #expect(result.compared >= 300)
            #expect(result.mismatches.isEmpty,
                    "\(result.mismatches.count) of \(result.compared) queries differ (seed \(String(Self.seed, radix: 16))); exported zone:\n\(cap(export.stdout, 1500))\nfirst mismatches:\n\(cap(result.mismatches.prefix(8).joined(separator: "\n\n"), 12_000))")
        }
    }

    /// The harness itself: two NSDs on the same data must agree (checks the comparison and corpus).
    @Test("The differential harness finds no mismatch between two NSDs", .enabled(if: Tools.nsd != nil, "nsd is not installed"))
    func harnessSelfCheck() async throws {
        let dir = try Paths.makeTempDir("diff-self")
        defer { try? FileManager.default.removeItem(at: dir) }
        // The generated zone of VPC 1 as docs/dns.md describes it.
        let zone = """
        $ORIGIN privatelink.internal.
        @ 60 IN SOA ns.privatelink.internal. hostmaster.privatelink.internal. 1 3600 600 86400 60
        @ 60 IN NS ns.privatelink.internal.
        ep-consumer1.epsrv-frankfurt1.eu-central-1 60 IN A 127.10.1.4
        ep-consumer1.epsrv-frankfurt1.eu-central-1 60 IN A 127.10.2.50
        ep-consumer1-eu-central-1a.epsrv-frankfurt1.eu-central-1 60 IN A 127.10.1.4
        ep-consumer1-eu-central-1b.epsrv-frankfurt1.eu-central-1 60 IN A 127.10.2.50
        epsrv-frankfurt1.eu-central-1 60 IN A 127.10.1.4
        epsrv-frankfurt1.eu-central-1 60 IN A 127.10.2.50

        """
        let zoneFile = dir.appendingPathComponent("privatelink.internal.zone")
        try zone.write(to: zoneFile, atomically: true, encoding: .utf8)
        let zones = [("privatelink.internal", zoneFile.path), ("example.internal", Paths.staticZone.path)]
        let a = try await offload { try NSDServer.start(zones: zones, probe: "privatelink.internal") }
        let b: NSDServer
        do { b = try await offload { try NSDServer.start(zones: zones, probe: "example.internal") } } catch { a.stop(); throw error }
        let queries = QueryCorpus.generate(seed: Self.seed, count: 400)
        let result = try await offload {
            try QueryCorpus.compare(queries, portA: a.port, labelA: "nsd-a", portB: b.port, labelB: "nsd-b")
        }
        a.stop()
        b.stop()
        #expect(result.compared >= 300 && result.mismatches.isEmpty,
                "\(result.mismatches.count) mismatches:\n\(cap(result.mismatches.prefix(5).joined(separator: "\n\n"), 8000))")
    }
}
