// `zonelink dns explain` (GET /v1/dns/explain) against `dig` on the running server: 1,000
// generated questions (names, types, listeners, sources, Client Subnets) get the same rcode,
// answer and authority from both, because explain runs the server's own decision.
import Foundation
import Testing
import ZoneLinkTestSupport

@Suite("dns explain agrees with dig", .serialized)
struct ExplainAgreementTests {
    struct Question: Hashable {
        var name: String
        var type: String
        /// True: the listener pinned to zone eu-central-1b; false: the one that reads the source's zone.
        var pinned: Bool
        var source: String
        var subnet: String?
    }

    /// What both sides say, records with their whitespace folded.
    struct Said: Equatable, CustomStringConvertible {
        var rcode: String
        var answer: [String]
        var authority: [String]
        var description: String { "\(rcode) answer \(answer) authority \(authority)" }
    }

    static func fold(_ line: String) -> String {
        line.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    static func questions(_ count: Int) -> [Question] {
        var random = SplitMix64(seed: 1414)
        let names = [
            "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal",
            "ep-consumer1-eu-central-1a.epsrv-frankfurt1.eu-central-1.privatelink.internal",
            "ep-consumer1-eu-central-1b.epsrv-frankfurt1.eu-central-1.privatelink.internal",
            "epsrv-frankfurt1.eu-central-1.privatelink.internal", "privatelink.internal", "nope.privatelink.internal",
            "EP-Consumer1.EPSRV-frankfurt1.eu-central-1.privatelink.internal",
            "example.internal", "www.example.internal", "api.example.internal", "x.apps.example.internal",
            "lab.example.internal", "nope.example.internal", "example.com",
        ]
        let types = ["A", "AAAA", "SOA", "NS", "TXT", "MX", "CNAME", "ANY"]
        let sources = ["127.10.1.10", "127.10.2.10", "127.10.9.9", "127.0.0.1"]
        return (0..<count).map { _ in
            let ecs = Int.random(in: 0..<6, using: &random) == 0
            return Question(
                name: names.randomElement(using: &random)!, type: types.randomElement(using: &random)!,
                pinned: Bool.random(using: &random), source: ecs ? "127.10.0.53" : sources.randomElement(using: &random)!,
                subnet: ecs ? ["127.10.1.0/24", "127.10.2.128/25", "127.99.0.0/16"].randomElement(using: &random)! : nil)
        }
    }

    static func explain(_ q: Question, on server: ControlAPIServer) throws -> Said {
        var path = "/v1/dns/explain?vpc=vpc-1&name=\(q.name)&type=\(q.type)&source=\(q.source)"
        if q.pinned { path += "&zone=eu-central-1b" }
        if let subnet = q.subnet { path += "&clientSubnet=\(subnet.replacingOccurrences(of: "/", with: "%2F"))" }
        let reply = try server.request("GET", path)
        guard reply.status == 200, let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any] else {
            throw HarnessError("GET \(path): \(reply.status) \(reply.body)")
        }
        return Said(
            rcode: object["rcode"] as? String ?? "", answer: (object["answer"] as? [String] ?? []).map(fold),
            authority: (object["authority"] as? [String] ?? []).map(fold))
    }

    /// Every question through `dig -f` batches (one per listener: dig reads the server and
    /// port from its command line reliably, per line less so); the answers in question order.
    static func dig(_ questions: [Question], server: ControlAPIServer, dig: String) throws -> [Said] {
        var said = [Said?](repeating: nil, count: questions.count)
        for pinned in [false, true] {
            let indices = questions.indices.filter { questions[$0].pinned == pinned }
            let answers = try digBatch(indices.map { questions[$0] }, port: pinned ? server.config.pinnedPort : server.config.sourcePort,
                                       file: server.dir.appendingPathComponent("questions-\(pinned).txt"), dig: dig)
            for (index, answer) in zip(indices, answers) { said[index] = answer }
        }
        return said.compactMap { $0 }
    }

    static func digBatch(_ questions: [Question], port: UInt16, file batch: URL, dig: String) throws -> [Said] {
        try questions.map { q in
            let subnet = q.subnet.map { " +subnet=\($0)" } ?? ""
            return "-b \(q.source) \(q.name) \(q.type) +norecurse +noall +comments +answer +authority\(subnet)"
        }.joined(separator: "\n").write(to: batch, atomically: true, encoding: .utf8)
        let result = try runProcessBlocking(dig, ["@127.0.0.1", "-p", String(port), "+time=5", "+tries=2", "-f", batch.path], timeout: 600)
        guard result.exited else { throw HarnessError(result.summary) }
        var said: [Said] = []
        var section = ""
        for line in result.stdout.split(separator: "\n").map(String.init) {
            if line.contains("->>HEADER<<-") {
                let status = line.range(of: "status: ").map { line[$0.upperBound...].prefix { $0.isLetter } } ?? ""
                said.append(Said(rcode: String(status), answer: [], authority: []))
                section = ""
            } else if line.hasPrefix(";; ANSWER SECTION") {
                section = "answer"
            } else if line.hasPrefix(";; AUTHORITY SECTION") {
                section = "authority"
            } else if line.hasPrefix(";") || line.trimmingCharacters(in: .whitespaces).isEmpty {
                if line.hasPrefix(";;") && line.hasSuffix("SECTION:") { section = "" }
            } else if !said.isEmpty {
                if section == "answer" { said[said.count - 1].answer.append(fold(line)) }
                if section == "authority" { said[said.count - 1].authority.append(fold(line)) }
            }
        }
        guard said.count == questions.count else {
            throw HarnessError("dig printed \(said.count) responses for \(questions.count) questions\n\(cap(result.stdout, 3000))\n\(result.stderr)")
        }
        return said
    }

    @Test("explain and dig agree on 1,000 generated questions", .enabled(if: Tools.dig != nil, "dig is not installed (apt-get install bind9-dnsutils)"))
    func explainAgreesWithDig() async throws {
        let server = try ControlAPIServer(tag: "explain-dig") { yaml in
            yaml.replacingOccurrences(of: "  zoneFiles:", with: "  trustedForwarders: [127.10.0.53]\n  zoneFiles:")
        }
        // ECS 2 and ECS 3 answer, so health settles (the first probes) rather than flapping.
        let backends = try BackendListeners(addresses: TestConfig.backendAddresses, port: server.config.backendPort)
        defer {
            backends.stop()
            server.cleanUp()
        }
        try await offload { try server.start() }
        let questions = Self.questions(1_000)
        try await offload {
            // Explain before and after dig: a question whose explanation changed in between
            // (a health transition) is asked again, so the comparison never races the clock.
            var pending = Array(questions.indices)
            for round in 1...5 where !pending.isEmpty {
                let asked = pending.map { questions[$0] }
                let before = try asked.map { try Self.explain($0, on: server) }
                let digs = try Self.dig(asked, server: server, dig: Tools.dig!)
                let after = try asked.map { try Self.explain($0, on: server) }
                var again: [Int] = []
                for (i, index) in pending.enumerated() {
                    if before[i] != after[i] { again.append(index); continue }
                    #expect(digs[i] == before[i], "round \(round), \(questions[index]): dig said \(digs[i]), explain said \(before[i])\n\(server.logs)")
                }
                pending = again
            }
            #expect(pending.isEmpty, "\(pending.count) questions never had a stable explanation across five rounds")
        }
    }
}
