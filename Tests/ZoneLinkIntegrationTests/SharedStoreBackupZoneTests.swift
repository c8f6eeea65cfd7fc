// A load balancer's backup zone across two hosts on one PostgreSQL store: host a carries zone
// a, host b zone b, and clb-1b (zone b) has zone a as its backup zone.
import Foundation
import Testing
import ZoneLinkTestSupport

extension SharedStoreTests {
    /// zones/local.yaml's clb-1b backed up in zone a, with a NAT address in zone a's vSwitch.
    static func backedUp(_ yaml: String) -> String {
        yaml.replacingOccurrences(
            of: "zone: eu-central-1b\n    natAddresses: [127.168.24.240]",
            with: "zone: eu-central-1b\n    backupZone: eu-central-1a\n    natAddresses: [127.168.24.240, 127.168.23.241]")
    }

    /// Kill -9 host b: once its lease has passed, host a opens the zone-b ENI of clb-1b itself
    /// (flows reach the backends from the zone-a NAT address) and its DNS answers that ENI as a
    /// zone-a one; host b back: host a stops listening there and answers zone b's ENI as zone
    /// b's again, and host b serves it.
    @Test(.enabled(if: ClientTool.dig.path != nil, "needs dig (dnsutils)"))
    func aBackupZonesHostCarriesTheBalancerWhileItsZonesHostIsDown() async throws {
        let postgres = try startPostgres()
        defer { postgres.remove() }
        let a = try ControlAPIServer(tag: "pg-backup-a") { "host: {id: gw-a, zones: [eu-central-1a]}\n" + Self.backedUp($0) }
        let b = try ControlAPIServer(tag: "pg-backup-b") { "host: {id: gw-b, zones: [eu-central-1b]}\n" + Self.backedUp($0) }
        defer { a.cleanUp(); b.cleanUp() }
        try #require(a.config.yaml.contains("backupZone: eu-central-1a"), "zones/local.yaml's clb-1b changed: \(a.config.yaml)")
        let backends = try [a, b].map { try BackendListeners(addresses: TestConfig.backendAddresses, port: $0.config.backendPort) }
        defer { for listeners in backends { listeners.stop() } }
        a.extraArguments = ["--store", postgres.url]
        b.extraArguments = ["--store", postgres.url]
        try await offload { try a.start(); try b.start() }
        let context = { "host a:\n\(a.logs)\nhost b:\n\(b.logs)" }
        let shown = json(try await offload { try a.request("GET", "/v1/endpoints/ep-consumer1") })
        let name = (shown["placement"] as? [String: Any])?["dnsName"] as? String ?? ""
        try #require(!name.isEmpty, "no dnsName for ep-consumer1: \(shown)")
        let (zoneA, zoneB) = ("127.10.1.4", "127.10.2.50")

        /// Waits until host a's DNS gives its zone-b listener exactly `expected`, in any order
        /// (generously: a lease is 10 s and the machine may be busy).
        func hostAAnswers(_ expected: Set<String>, _ when: String) async throws {
            var seen: [String] = []
            for _ in 0..<900 {
                seen = (try? await addresses(name, on: a)) ?? []
                if Set(seen) == expected && seen.count == expected.count { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("\(when): host a answered \(seen) for \(name), expected \(expected.sorted())\n\(context())")
        }
        /// Whether a flow through `host`'s listener on the zone-b ENI reaches a backend (the
        /// backend closes at once: the gateway relays the end; nothing listening: refused).
        @Sendable func flowThrough(_ host: ControlAPIServer) -> Bool {
            (try? oneFlow(from: "127.10.2.10", to: zoneB, port: host.config.eniPort)) == true
        }
        @Sendable func logged(_ host: ControlAPIServer, _ words: String...) -> Bool {
            host.logs.split(separator: "\n").contains { line in words.allSatisfy { line.contains($0) } }
        }

        // Both up: zone b's ENI is host b's; host a stands by (nothing listens there).
        try await hostAAnswers([zoneB], "both hosts up")
        try await offload {
            try eventually("a flow through host b's zone-b ENI reaches a backend") { flowThrough(b) }
        }
        #expect(!flowThrough(a), "host a serves zone b's ENI while host b is up\n\(context())")

        // Host b killed: within the lease (and a heartbeat), host a carries clb-1b.
        await offloadQuietly { b.kill() }
        let killed = monotonicNow()
        try await hostAAnswers([zoneA, zoneB], "host b killed: zone b's ENI answered as one of zone a")
        let movedAfter = monotonicNow() - killed
        try await offload {
            try eventually("host a moves clb-1b to its backup zone", within: 90) {
                logged(a, "clb-1b", "serves from its backup zone eu-central-1a")
            }
            try eventually("a flow through host a's zone-b ENI reaches a backend") { flowThrough(a) }
            // The flow left from clb-1b's zone-a NAT address (the attribution log, flushed every 250 ms).
            let log = a.stateDir.appendingPathComponent("attribution.log")
            try eventually("host a's attribution log shows the zone-a NAT address") {
                ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("127.168.23.241")
            }
        }

        // Host b back: new flows go back to it; host a stops listening on zone b's ENI.
        try await offload { try b.start() }
        let restarted = monotonicNow()
        try await hostAAnswers([zoneB], "host b back")
        let backAfter = monotonicNow() - restarted
        try await offload {
            try eventually("host a hands clb-1b back", within: 90) { logged(a, "clb-1b", "serves from its zone eu-central-1b again") }
            try eventually("host a no longer takes flows on zone b's ENI") { !flowThrough(a) }
            try eventually("a flow through host b's zone-b ENI reaches a backend again") { flowThrough(b) }
        }
        print("backup zone across two hosts: host a's DNS answered clb-1b's ENI as zone a's \(String(format: "%.1f", movedAfter)) s after kill -9 of host b (lease 10 s); zone b's again \(String(format: "%.1f", backAfter)) s after host b was started (ready)")
        #expect(try await offload { a.stop() && b.stop() }, "a host did not exit 0 on SIGTERM.\n\(context())")
    }
}
