// Several hosts, one catalog: two `zonelink serve` processes on one PostgreSQL database (a
// throwaway cluster on a Unix socket), each with its own config ports and state directory.
import Foundation
import Testing
import ZoneLinkTestSupport

@Suite("Two hosts on one PostgreSQL store", .serialized)
struct SharedStoreTests {
    static let serviceBody = #"{"id":"epsrv-shared","account":"2222222222222222","resources":[{"zone":"eu-central-1b","loadBalancer":"clb-1b"}],"zoneAffinity":true}"#
    static let endpointBody = #"{"id":"ep-shared","account":"1111111111111111","service":"epsrv-shared","vpc":"vpc-1","zones":[{"zone":"eu-central-1b","vswitch":"vsw-1b"}]}"#

    func json(_ reply: HTTPReply) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any] ?? [:]
    }

    /// Waits for `condition` with a generous deadline; throws what was last seen.
    func eventually(_ what: String, within seconds: Double = 60, _ condition: () throws -> Bool) throws {
        let deadline = monotonicNow() + seconds
        while monotonicNow() < deadline {
            if (try? condition()) == true { return }
            sleepSeconds(0.1)
        }
        throw HarnessError("not within \(Int(seconds)) s: \(what)")
    }

    /// The A records `host`'s DNS gives VPC 1's clients in zone b for `name`.
    func addresses(_ name: String, on host: ControlAPIServer) async throws -> [String] {
        let (answer, result) = try await runClient(.dig, name: name, type: "A", port: host.config.pinnedPort, transport: .udp)
        guard let answer else { throw HarnessError("dig printed no answer: \(result.stdout) \(result.stderr)") }
        return answer.answerData("A")
    }

    @Test(.enabled(if: ClientTool.dig.path != nil, "needs dig (dnsutils)"))
    func theSeedAcrossTwoHostsSurvivesTheStoreGoingAway() async throws {
        guard PostgresServer.installed else {
            FileHandle.standardError.write(Data("SKIPPED: \(PostgresServer.missing)\n".utf8))
            try Test.cancel("\(PostgresServer.missing)")
        }
        let postgres: PostgresServer
        do {
            postgres = try PostgresServer.create()
        } catch {
            FileHandle.standardError.write(Data("SKIPPED: PostgreSQL cannot start here: \(error)\n".utf8))
            try Test.cancel("PostgreSQL cannot start here: \(error)")
        }
        defer { postgres.remove() }
        let a = try ControlAPIServer(tag: "pg-host-a")
        let b = try ControlAPIServer(tag: "pg-host-b")
        defer { a.cleanUp(); b.cleanUp() }
        // The backends answer health checks on both hosts' backend ports: DNS keeps the ENIs.
        let backends = try [a, b].map { try BackendListeners(addresses: TestConfig.backendAddresses, port: $0.config.backendPort) }
        defer { for listeners in backends { listeners.stop() } }
        a.extraArguments = ["--store", postgres.url]
        b.extraArguments = ["--store", postgres.url]
        try a.start()
        try b.start()
        let context = { "\(a.logs)\n\(b.logs)\npostgres: \(cap(postgres.log, 2000))" }

        // B's provider creates the service on host a; host b serves it without being told.
        let created = try a.request("POST", "/v1/services", json: Self.serviceBody)
        #expect(created.status == 201, "\(created.body)\n\(context())")
        try eventually("host b serves the service created on host a") {
            try b.request("GET", "/v1/services/epsrv-shared").status == 200
        }
        // The whitelist and the endpoint on host b, the acceptance on host a.
        try eventually("host b adds A to the whitelist") {
            try b.request("POST", "/v1/services/epsrv-shared/whitelist", json: #"{"account":"1111111111111111"}"#).status == 201
        }
        try eventually("host b creates the endpoint") { try b.request("POST", "/v1/endpoints", json: Self.endpointBody).status == 201 }
        try eventually("host a accepts the endpoint") {
            try a.request("POST", "/v1/services/epsrv-shared/connections/ep-shared/accept").status == 200
        }
        var name = ""
        var address = ""
        for host in [a, b] {
            try eventually("both hosts see the endpoint Connected") {
                let shown = json(try host.request("GET", "/v1/endpoints/ep-shared"))
                guard shown["connection"] as? String == "Connected", let placement = shown["placement"] as? [String: Any],
                      let eni = (placement["enis"] as? [[String: Any]])?.first else { return false }
                name = placement["dnsName"] as? String ?? ""
                address = eni["address"] as? String ?? ""
                return true
            }
        }
        #expect(!name.isEmpty && !address.isEmpty, "\(context())")
        // Both hosts' DNS answer the endpoint's name with the same ENI address.
        for host in [a, b] {
            var seen: [String] = []
            for _ in 0..<100 {
                seen = try await addresses(name, on: host)
                if seen == [address] { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(seen == [address], "\(name) on \(host.config.pinnedPort): \(seen)\n\(context())")
        }

        // PostgreSQL goes away: DNS keeps answering, writes are refused with 503 naming the store.
        postgres.stop()
        let refused = try a.request("POST", "/v1/services/epsrv-shared/whitelist", json: #"{"account":"3333333333333333"}"#)
        #expect(refused.status == 503, "\(refused.status) \(refused.body)")
        #expect(json(refused)["code"] as? String == "store_unavailable", "\(refused.body)")
        #expect(refused.body.contains("PostgreSQL store postgres://postgres@"), "\(refused.body)")
        #expect(try await addresses(name, on: a) == [address])
        #expect(try a.request("GET", "/v1/endpoints/ep-shared").status == 200)

        // Host b restarts while the store is down: it serves its last applied catalog.
        b.kill()
        try b.start()
        #expect(b.logs.contains("starting from the last applied catalog"), "\(b.logs)")
        #expect(try b.request("GET", "/v1/endpoints/ep-shared").status == 200)
        #expect(try await addresses(name, on: b) == [address])

        // The store comes back: writes resume and both hosts converge.
        try postgres.start()
        try eventually("a write on host a goes through once PostgreSQL is back") {
            try a.request("POST", "/v1/services/epsrv-shared/whitelist", json: #"{"account":"3333333333333333"}"#).status == 201
        }
        try eventually("host b sees the write made after the outage") {
            let entries = try b.request("GET", "/v1/services/epsrv-shared/whitelist")
            return entries.status == 200 && entries.body.contains("3333333333333333")
        }
        _ = context
    }
}
