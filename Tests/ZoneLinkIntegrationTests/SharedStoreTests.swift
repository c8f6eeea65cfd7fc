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

    /// A throwaway PostgreSQL cluster, or the test is skipped, saying why.
    func startPostgres() throws -> PostgresServer {
        guard PostgresServer.installed else {
            FileHandle.standardError.write(Data("SKIPPED: \(PostgresServer.missing)\n".utf8))
            try Test.cancel("\(PostgresServer.missing)")
        }
        do {
            return try PostgresServer.create()
        } catch {
            FileHandle.standardError.write(Data("SKIPPED: PostgreSQL cannot start here: \(error)\n".utf8))
            try Test.cancel("PostgreSQL cannot start here: \(error)")
        }
    }

    @Test(.enabled(if: ClientTool.dig.path != nil, "needs dig (dnsutils)"))
    func theSeedAcrossTwoHostsSurvivesTheStoreGoingAway() async throws {
        let postgres = try startPostgres()
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

    /// One write of the mixed load, and what it leaves when committed.
    enum Write: Sendable {
        case whitelistAdd(String)
        case whitelistRemove(String)
        case createService(String)

        var request: (method: String, path: String, body: String?) {
            switch self {
            case .whitelistAdd(let account):
                ("POST", "/v1/services/\(SharedStoreTests.service)/whitelist", #"{"account":"\#(account)"}"#)
            case .whitelistRemove(let account):
                ("DELETE", "/v1/services/\(SharedStoreTests.service)/whitelist/\(account)", nil)
            case .createService(let id):
                ("POST", "/v1/services", SharedStoreTests.killService(id))
            }
        }
    }

    static let service = "epsrv-shared"

    static func killService(_ id: String) -> String {
        #"{"id":"\#(id)","account":"2222222222222222","resources":[{"zone":"eu-central-1b","loadBalancer":"clb-1b"}],"autoAcceptConnections":true}"#
    }

    static func account(_ n: Int, run: UInt64) -> String {
        // 16 digits, distinct per n, unlike the config's accounts (1111…, 2222…, 3333…).
        String(format: "8%07llu%08d", run % 10_000_000, n)
    }

    func whitelist(_ host: ControlAPIServer) throws -> [String] {
        let r = try host.request("GET", "/v1/services/\(Self.service)/whitelist")
        guard r.status == 200, let array = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]] else {
            throw HarnessError("GET whitelist -> \(r.status): \(r.body)")
        }
        return array.compactMap { $0["account"] as? String }
    }

    /// A service as the test checks it: its resources' load balancers and auto-accept.
    struct ServiceShape: Sendable, Equatable {
        var loadBalancers: [String]
        var autoAccept: Bool?
    }

    func services(_ host: ControlAPIServer) throws -> [String: ServiceShape] {
        let r = try host.request("GET", "/v1/services")
        guard r.status == 200, let array = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]] else {
            throw HarnessError("GET services -> \(r.status): \(r.body)")
        }
        var byID: [String: ServiceShape] = [:]
        for service in array {
            guard let id = service["id"] as? String else { continue }
            let resources = service["resources"] as? [[String: Any]] ?? []
            byID[id] = ServiceShape(
                loadBalancers: resources.compactMap { $0["loadBalancer"] as? String }, autoAccept: service["autoAcceptConnections"] as? Bool)
        }
        return byID
    }

    @Test("200 concurrent mixed writes over two hosts, kill -9 one of them half way: every acknowledged write is there exactly once, nothing half-applied")
    func killOneHostDuringMixedWrites() async throws {
        let postgres = try startPostgres()
        defer { postgres.remove() }
        let a = try ControlAPIServer(tag: "pg-kill-a")
        let b = try ControlAPIServer(tag: "pg-kill-b")
        defer { a.cleanUp(); b.cleanUp() }
        a.extraArguments = ["--store", postgres.url]
        b.extraArguments = ["--store", postgres.url]
        try await offload { try a.start(); try b.start() }
        let context = { "\(a.logs)\n\(b.logs)\npostgres: \(cap(postgres.log, 2000))" }

        // The service, and 50 accounts on its whitelist for the removes to take off.
        let run = UInt64.random(in: 0...UInt64.max)
        let created = try await offload { try a.request("POST", "/v1/services", json: Self.serviceBody) }
        try #require(created.status == 201, "\(created.body)\n\(context())")
        let preset = (0..<50).map { Self.account(1000 + $0, run: run) }
        for account in preset {
            let added = try await offload { try a.request("POST", "/v1/services/\(Self.service)/whitelist", json: #"{"account":"\#(account)"}"#) }
            try #require(added.status == 201, "\(added.body)")
        }
        try await offload {
            try eventually("host b serves the preset whitelist") { try Set(whitelist(b)) == Set(preset) }
        }

        // 100 adds, 50 removes of the preset accounts, 50 service creates; even ones on host a,
        // odd ones on host b, which is killed once 50 of its writes are acknowledged. A conflict (another host committed first) is sent again, as
        // `docs/scale.md` tells clients to.
        let writes: [Write] = (0..<200).map { i in
            switch i % 4 {
            case 0, 1: .whitelistAdd(Self.account(i, run: run))
            case 2: .createService("epsrv-kill\(i)")
            default: .whitelistRemove(preset[i / 4])
            }
        }
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var acknowledged: Set<Int> = []
            var unanswered: Set<Int> = []
            var refused: [Int: String] = [:]
            var killed = false
        }
        let tally = Tally()
        let hosts = [a, b]
        await withTaskGroup(of: Void.self) { group in
            for (index, write) in writes.enumerated() {
                group.addTask {
                    await offloadQuietly {
                        let host = hosts[index % 2]
                        let (method, path, body) = write.request
                        for _ in 0..<60 {
                            guard let reply = try? host.request(method, path, json: body, timeout: 30) else {
                                tally.lock.withLock { _ = tally.unanswered.insert(index) }
                                return
                            }
                            if reply.status == 409 && reply.body.contains("nothing of this request was committed") { continue }
                            let killNow = tally.lock.withLock { () -> Bool in
                                guard (200..<300).contains(reply.status) else {
                                    tally.refused[index] = "\(reply.status) \(reply.body)"
                                    return false
                                }
                                tally.acknowledged.insert(index)
                                // Half of host b's writes in: the other half die with it.
                                let onB = tally.acknowledged.filter { $0 % 2 == 1 }.count
                                guard index % 2 == 1 && onB == 50 && !tally.killed else { return false }
                                tally.killed = true
                                return true
                            }
                            if killNow { b.kill() }
                            return
                        }
                        tally.lock.withLock { tally.refused[index] = "still a conflict after 60 tries" }
                    }
                }
            }
        }
        try await offload { b.kill() }  // in case fewer than 50 of host b's were acknowledged
        let (acknowledged, unanswered, refused) = tally.lock.withLock { (tally.acknowledged, tally.unanswered, tally.refused) }
        print("two-host kill -9 test: \(acknowledged.count) acknowledged, \(unanswered.count) unanswered, \(refused.count) refused")
        #expect(refused.isEmpty, "writes refused otherwise than by a conflict: \(refused.sorted { $0.key < $1.key }.prefix(5))")
        try #require(acknowledged.filter { $0 % 2 == 1 }.count >= 50, "fewer than 50 of host b's writes acknowledged.\n\(context())")
        #expect(tally.lock.withLock { tally.killed } && unanswered.count > 0, "host b was not killed under its writes")

        // What host a serves, and what host b serves once started again, is the store's state.
        try await offload { try b.start() }
        let (listA, servicesA, listB, servicesB) = try await offload { () throws -> ([String], [String: ServiceShape], [String], [String: ServiceShape]) in
            var result: ([String], [String: ServiceShape], [String], [String: ServiceShape]) = ([], [:], [], [:])
            try eventually("host b, restarted, serves what host a serves") {
                result = (try whitelist(a), try services(a), try whitelist(b), try services(b))
                return Set(result.0) == Set(result.2) && Set(result.1.keys) == Set(result.3.keys)
            }
            return result
        }
        #expect(listA.count == Set(listA).count, "duplicate whitelist entries: \(listA.sorted())")
        #expect(listB.count == listA.count && servicesB.keys.sorted() == servicesA.keys.sorted())
        let whitelisted = Set(listA)
        for (index, write) in writes.enumerated() {
            let acked = acknowledged.contains(index)
            switch write {
            case .whitelistAdd(let account):
                if acked { #expect(whitelisted.contains(account), "acknowledged add of \(account) (write \(index)) is lost") }
                if !acked && !unanswered.contains(index) { #expect(!whitelisted.contains(account)) }
            case .whitelistRemove(let account):
                if acked { #expect(!whitelisted.contains(account), "acknowledged remove of \(account) (write \(index)) is undone") }
                if !acked && !unanswered.contains(index) { #expect(whitelisted.contains(account)) }
            case .createService(let id):
                if acked { #expect(servicesA[id] != nil, "acknowledged create of \(id) (write \(index)) is lost") }
                // Committed or not, a create is whole: its resources and settings as sent.
                if let service = servicesA[id] {
                    #expect(service == ServiceShape(loadBalancers: ["clb-1b"], autoAccept: true), "\(id) is not as sent: \(service)")
                }
            }
        }
        let sentAccounts = Set(writes.compactMap { if case .whitelistAdd(let account) = $0 { account } else { nil } })
        #expect(whitelisted.subtracting(sentAccounts).subtracting(preset).isEmpty, "accounts nobody sent: \(whitelisted.subtracting(sentAccounts).subtracting(preset))")
        let unacknowledgedCommitted = writes.indices.filter { unanswered.contains($0) }.count
        print("two-host kill -9 test: \(unacknowledgedCommitted) writes got no answer (host b died under them); each is whole or absent")
        #expect(try await offload { a.stop() && b.stop() }, "a host did not exit 0 on SIGTERM.\n\(context())")
    }

    /// Zones placed on hosts: host a carries zone a, host b zone b (`host:` in each file). A
    /// zone-b client asking host a's DNS gets the zone-b ENI while host b lives; once host b is
    /// killed and its lease (10 s) has passed, host a answers zone a's ENI; host b back, zone b
    /// again.
    @Test(.enabled(if: ClientTool.dig.path != nil, "needs dig (dnsutils)"))
    func aDeadHostsZoneIsAnsweredAroundWithinTheLease() async throws {
        let postgres = try startPostgres()
        defer { postgres.remove() }
        let a = try ControlAPIServer(tag: "pg-place-a") { "host: {id: gw-a, zones: [eu-central-1a]}\n" + $0 }
        let b = try ControlAPIServer(tag: "pg-place-b") { "host: {id: gw-b, zones: [eu-central-1b]}\n" + $0 }
        defer { a.cleanUp(); b.cleanUp() }
        let backends = try [a, b].map { try BackendListeners(addresses: TestConfig.backendAddresses, port: $0.config.backendPort) }
        defer { for listeners in backends { listeners.stop() } }
        a.extraArguments = ["--store", postgres.url]
        b.extraArguments = ["--store", postgres.url]
        try await offload { try a.start(); try b.start() }
        let context = { "\(a.logs)\n\(b.logs)" }
        let shown = json(try await offload { try a.request("GET", "/v1/endpoints/ep-consumer1") })
        let name = (shown["placement"] as? [String: Any])?["dnsName"] as? String ?? ""
        try #require(!name.isEmpty, "no dnsName for ep-consumer1: \(shown)")
        let (zoneA, zoneB) = ("127.10.1.4", "127.10.2.50")

        /// Waits until host a's DNS gives its zone-b listener `expected` (generously: a lease
        /// is 10 s and the machine may be busy).
        func hostAAnswers(_ expected: String, _ when: String) async throws {
            var seen: [String] = []
            for _ in 0..<600 {
                seen = (try? await addresses(name, on: a)) ?? []
                if seen == [expected] { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("\(when): host a answered \(seen) for \(name), expected [\(expected)]\n\(context())")
        }
        try await hostAAnswers(zoneB, "both hosts up")
        // Host b's gateway owns the zone-b ENI, host a's does not.
        func listens(_ host: ControlAPIServer, on eni: String) -> Bool {
            host.logs.split(separator: "\n").contains { $0.contains("listening") && $0.contains(eni) }
        }
        #expect(listens(b, on: zoneB) && !listens(a, on: zoneB) && listens(a, on: zoneA) && !listens(b, on: zoneA), "\(context())")
        await offloadQuietly { b.kill() }
        try await hostAAnswers(zoneA, "host b killed")
        try await offload { try b.start() }
        try await hostAAnswers(zoneB, "host b back")
        #expect(try await offload { a.stop() && b.stop() }, "a host did not exit 0 on SIGTERM.\n\(context())")
    }
}
