// Zonal shift end to end (`zonelink zone shift …`): a service with a load balancer in each of
// two zones, in front of ECS 2 (zone a) and ECS 3 (zone b), an endpoint with an ENI in each
// zone, clients in both zones of VPC 1. The operator shifts zone a away and back with the CLI;
// dig and curl inside the lab's namespaces check DNS, new flows, an open flow, expiry, drain,
// the refusal of the last zone, bad input and persistence across a restart. Needs what the
// gateway tests need (GatewayLab.swift).
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum ZonalShiftConfig {
    static let operatorToken = "token-shift-operator"
    static let consumerToken = "token-account-a"
    /// The endpoint's ENIs: zone a (vsw-1a) and zone b (vsw-1b).
    static let eniA = "10.10.1.4"
    static let eniB = "10.10.2.4"
    /// Clients of VPC 1 in each zone (the lab's host addresses).
    static let clientA = LabConsumer(vpc: .vpc1, client: LabAddress.zoneAClient, dns: "10.10.0.2", endpoint: "ep-shift", eni: eniA)
    static let clientB = LabConsumer(vpc: .vpc1, client: LabConsumer.vpc1.client, dns: "10.10.0.2", endpoint: "ep-shift", eni: eniB)

    static func tokens() -> String {
        "operator \(sha256Hex(operatorToken))\n\(WalkthroughConfig.accountA) \(sha256Hex(consumerToken))\n"
    }

    /// VPC 2's vSwitches split 192.168.24.0/24 so that ECS 2 (.200) lives in zone a and ECS 3
    /// (.12) in zone b: a zone-a shift takes ECS 2 out of both load balancers.
    static func yaml(namespaces ns: [LabVPC: String]) -> String {
        """
        region: eu-central-1
        domain: privatelink.internal
        dns:
          ttl: 1
        accounts:
          - {id: "\(WalkthroughConfig.accountA)", name: account-a}
          - {id: "\(WalkthroughConfig.accountB)", name: account-b}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc1]!)
            dnsAddress: 10.10.0.2
            vswitches:
              - {id: vsw-1a, zone: eu-central-1a, cidr: 10.10.1.0/24}
              - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}
            securityGroups:
              - id: sg-web
                ingress: [{protocol: tcp, ports: "80", source: 10.10.0.0/16}]
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: \(ns[.vpc2]!)
            vswitches:
              - {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.24.128/25}
              - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/25}
        loadBalancers:
          - id: clb-a
            account: account-b
            vpc: vpc-2
            zone: eu-central-1a
            natAddresses: [192.168.24.240]
            listeners:
              - protocol: tcp
                port: 80
                backends: [{address: \(LabAddress.ecs2)}, {address: \(LabAddress.ecs3)}]
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
          - id: clb-b
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [192.168.24.101]
            listeners:
              - protocol: tcp
                port: 80
                backends: [{address: \(LabAddress.ecs2)}, {address: \(LabAddress.ecs3)}]
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
        endpointServices:
          - id: epsrv-frankfurt1
            account: account-b
            resources:
              - {zone: eu-central-1a, loadBalancer: clb-a}
              - {zone: eu-central-1b, loadBalancer: clb-b}
            autoAcceptConnections: true
            zoneAffinity: true
            whitelist: ["\(WalkthroughConfig.accountA)"]
        endpoints:
          - id: ep-shift
            account: account-a
            service: epsrv-frankfurt1
            vpc: vpc-1
            securityGroups: [sg-web]
            zones:
              - {zone: eu-central-1a, vswitch: vsw-1a, address: \(eniA)}
              - {zone: eu-central-1b, vswitch: vsw-1b, address: \(eniB)}

        """
    }
}

@Suite("Zonal shift end to end", .serialized, .timeLimit(.minutes(8)),
       .enabled(if: GatewayLabRequirements.isRoot, "needs root (network namespaces, addresses, setns)"),
       .enabled(if: GatewayLabRequirements.ipPath != nil, "needs ip (iproute2)"),
       .enabled(if: GatewayLabRequirements.netnsWorks, "needs network namespaces: `ip netns add` / `ip netns exec` do not work on this machine"),
       .enabled(if: GatewayLabRequirements.toolsPresent,
                "needs nginx, haproxy, curl, dig, python3 and ss (run bash scripts/deps)"))
struct ZonalShiftTests {

    @Test("Shift zone a away: DNS and new flows leave it, an open flow continues; refusal, bad input, restart, end, expiry, drain")
    func shiftZoneAway() async throws {
        let lab = try await offload { try GatewayLab.create(tag: "shift") }
        let serve = WalkthroughBox<LabProcess?>(nil)
        do {
            let failures = try await offload { try Self.steps(lab, serve) }
            for failure in failures { Issue.record(Comment(rawValue: failure)) }
        } catch {
            await offloadQuietly { ControlWalkthroughTests.stop(serve.value); lab.tearDown() }
            throw error
        }
        await offloadQuietly { ControlWalkthroughTests.stop(serve.value); lab.tearDown() }
    }

    static func steps(_ lab: GatewayLab, _ serveBox: WalkthroughBox<LabProcess?>) throws -> [String] {
        var failures: [String] = []
        func expect(_ condition: Bool, _ message: @autoclosure () -> String = "") {
            if !condition { failures.append(message()) }
        }
        try lab.startNginx(.ecs2)
        try lab.startNginx(.ecs3)

        let binary = try Paths.requireZonelink()
        let config = lab.dir.appendingPathComponent("zonelink.yaml")
        try ZonalShiftConfig.yaml(namespaces: lab.namespaces).write(to: config, atomically: true, encoding: .utf8)
        let stateDir = lab.dir.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        try ZonalShiftConfig.tokens().write(to: stateDir.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)

        func start() throws -> LabProcess {
            let serve = try LabProcess(name: "zonelink", executable: binary.path,
                                       arguments: ["serve", "--config", config.path, "--state-dir", stateDir.path,
                                                   "--threads", "1", "--log-level", "info"],
                                       dir: lab.dir)
            serveBox.value = serve
            lab.register(serve.pid)
            return serve
        }
        var serve = try start()
        let logs = { "zonelink serve output (last lines):\n\(capTail(serveBox.value?.stderr ?? "", 6000))" }

        func cli(_ args: [String], token: String = ZonalShiftConfig.operatorToken) throws -> ProcessResult {
            try runProcessBlocking(binary.path, args + ["--state-dir", stateDir.path, "--token", token], timeout: 20)
        }
        func json(_ args: [String]) throws -> Any {
            let r = try cli(args + ["--json"])
            guard r.exited, r.status == 0, let value = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) else {
                throw HarnessError("zonelink \(args.joined(separator: " ")) --json failed:\n\(r.summary)\n\(logs())")
            }
            return value
        }
        func shiftedZones() throws -> [String] {
            ((try json(["zone", "shift", "list"])) as? [[String: Any]] ?? []).compactMap { $0["zone"] as? String }
        }
        /// The A records `client` gets for the endpoint's name, once they stop changing.
        func answers(_ client: LabConsumer, name: String? = nil) throws -> [String] {
            try lab.dig(client, name: name).0?.answerData("A") ?? []
        }
        func waitForAnswer(_ client: LabConsumer, _ wanted: [String], name: String? = nil, _ what: String) throws {
            var last: [String] = []
            let ok = try GatewayLab.poll(timeout: 10, every: 0.2) {
                last = try answers(client, name: name)
                return last == wanted
            }
            expect(ok, "\(what): dig from \(client.client) for \(name ?? client.name) expected \(wanted) within 10 s, got \(last)\n\(logs())")
        }
        /// Waits until both backends of both load balancers are healthy.
        func waitReady(_ what: String) throws {
            var last = ""
            let ready = try GatewayLab.poll(timeout: 30, every: 0.25) {
                guard serveBox.value?.isRunning == true else { return true }
                let r = try cli(["health", "--json"])
                last = r.summary
                guard r.status == 0, let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                      let backends = o["backends"] as? [[String: Any]], backends.count == 4,
                      backends.allSatisfy({ ($0["healthy"] as? Bool) == true }) else { return false }
                return try lab.listening(.vpc1, udp: true).contains("10.10.0.2:53 ")
            }
            guard serveBox.value?.isRunning == true, ready else {
                throw HarnessError("\(what): zonelink serve not ready within 30 s (health: \(last)).\n\(logs())")
            }
        }
        /// Bodies of `count` requests through `eni` from `client`.
        func bodies(_ client: LabConsumer, eni: String, count: Int = 12) throws -> [String] {
            try (0..<count).map { _ in
                try lab.curl(client, eni: eni).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        /// The operator's view of flows through `eni`.
        func flows(through eni: String) throws -> [[String: Any]] {
            ((try json(["nat", "list"])) as? [[String: Any]] ?? []).filter { $0["eni"] as? String == "\(eni):80" }
        }
        func slowTransfer(_ client: LabConsumer, eni: String, name: String) throws -> LabProcess {
            guard let curl = GatewayLabRequirements.curl else { throw HarnessError("curl is not installed") }
            return try lab.spawn(.vpc1, name: name, [
                curl, "-sS", "-o", "/dev/null", "--interface", client.client, "--limit-rate", "256k", "--max-time", "200",
                "-w", "%{http_code} %{size_download}\n", "--resolve", "\(client.name):80:\(eni)", "http://\(client.name)/big",
            ])
        }

        try waitReady("start")
        let a = ZonalShiftConfig.clientA, b = ZonalShiftConfig.clientB
        let eniA = ZonalShiftConfig.eniA, eniB = ZonalShiftConfig.eniB
        let shown = try json(["endpoint", "show", "ep-shift"]) as? [String: Any]
        let enis = (shown?["placement"] as? [String: Any])?["enis"] as? [[String: Any]] ?? []
        let zoneAName = enis.first { $0["zone"] as? String == "eu-central-1a" }?["dnsName"] as? String ?? "?"

        // Before: affinity gives each client its own zone's ENI; both backends serve.
        try waitForAnswer(a, [eniA], "before the shift")
        try waitForAnswer(b, [eniB], "before the shift")
        let before = try bodies(b, eni: eniB)
        expect(before.contains("ECS 2") && before.contains("ECS 3"), "before the shift: expected both backends, got \(before)")

        // An open flow through zone a's ENI, to be carried on through the shift.
        let transfer = try slowTransfer(a, eni: eniA, name: "slow-before-shift")
        defer { transfer.stop() }
        let flowing = try GatewayLab.poll(timeout: 30, every: 0.2) {
            try flows(through: eniA).contains { ($0["bytesFromTarget"] as? Int ?? 0) > 0 }
        }
        expect(flowing, "no flow through \(eniA) within 30 s of the transfer's start:\n\(transfer.output)")

        // Bad input and tenants are refused, naming the rule; nothing changes.
        for (args, rule) in [
            (["--expires", "10"], "not a duration"), (["--expires", "0s"], "not a duration"), (["--expires", "200h"], "out of range"),
            (["--drain=-5m"], "not a duration"),
        ] {
            let r = try cli(["zone", "shift", "start", "eu-central-1a"] + args)
            expect(r.exited && r.status == 1 && r.stderr.contains(rule), "zone shift start \(args): expected exit 1 naming '\(rule)', got \(r.summary)")
        }
        let unknown = try cli(["zone", "shift", "start", "eu-central-1z"])
        expect(unknown.status == 1 && unknown.stderr.contains("unknown zone"), "unknown zone: \(unknown.summary)")
        let tenant = try cli(["zone", "shift", "start", "eu-central-1a"], token: ZonalShiftConfig.consumerToken)
        expect(tenant.status == 1 && tenant.stderr.contains("only the operator"), "a tenant's shift: \(tenant.summary)")
        let afterRefusals = try shiftedZones()
        expect(afterRefusals.isEmpty, "refused shifts changed the list: \(afterRefusals)")

        // Shift zone a away.
        let started = try json(["zone", "shift", "start", "eu-central-1a", "--reason", "maintenance of rack 7"]) as? [String: Any]
        expect(started?["zone"] as? String == "eu-central-1a" && started?["reason"] as? String == "maintenance of rack 7",
               "zone shift start: \(String(describing: started))")
        try waitForAnswer(a, [eniB], "zone a shifted away: the zone-a client")
        try waitForAnswer(b, [eniB], "zone a shifted away: the zone-b client")
        // The per-zone name still answers with its ENI.
        try waitForAnswer(a, [eniA], name: zoneAName, "zone a shifted away: the zone-a name")
        // New flows, through either ENI, reach zone b's backend only.
        let afterB = try bodies(b, eni: eniB)
        let afterA = try bodies(a, eni: eniA)
        expect(afterB.allSatisfy { $0 == "ECS 3" } && afterA.allSatisfy { $0 == "ECS 3" },
               "zone a shifted away: new flows must reach ECS 3 (zone b) only; through \(eniB): \(afterB), through \(eniA): \(afterA)")
        // The open flow carries on.
        let progress = try flows(through: eniA).compactMap { $0["bytesFromTarget"] as? Int }.max() ?? 0
        // Generous: at 256 KiB/s the flow grows by megabytes in this time even on a busy machine.
        let grew = try GatewayLab.poll(timeout: 90, every: 0.5) {
            (try flows(through: eniA).compactMap { $0["bytesFromTarget"] as? Int }.max() ?? 0) > progress
        }
        let rows = grew ? [] : try flows(through: eniA)
        expect(transfer.isRunning && grew,
               "the flow open before the shift stopped (curl running: \(transfer.isRunning), bytes from the target grew past \(progress) within 90 s: \(grew)); flows through \(eniA): \(rows)\n\(transfer.output)\n\(logs())")
        // Shown in the list, health and metrics.
        let health = try json(["health"]) as? [String: Any]
        let backendRows = health?["backends"] as? [[String: Any]] ?? []
        expect(backendRows.filter { $0["address"] as? String == LabAddress.ecs2 }.allSatisfy { $0["shiftedAway"] as? Bool == true }
               && (health?["zonalShifts"] as? [[String: Any]])?.first?["zone"] as? String == "eu-central-1a",
               "health: expected ECS 2 shifted away and the shift listed, got \(String(describing: health))")
        // Where things serve from: zone a's ENI and balancer are shifted away (no backup zone).
        let zoneRows = health?["zones"] as? [[String: Any]] ?? []
        let balancerRows = health?["loadBalancers"] as? [[String: Any]] ?? []
        expect(zoneRows.contains { $0["zone"] as? String == "eu-central-1a" && $0["state"] as? String == "shiftedAway" && $0["servingZone"] as? String == "eu-central-1a" }
               && zoneRows.contains { $0["zone"] as? String == "eu-central-1b" && $0["state"] as? String == "home" }
               && balancerRows.contains { $0["loadBalancer"] as? String == "clb-a" && $0["state"] as? String == "shiftedAway" }
               && balancerRows.contains { $0["loadBalancer"] as? String == "clb-b" && $0["state"] as? String == "home" },
               "health: expected zone a's ENI and clb-a shiftedAway, zone b's home, got zones \(zoneRows), load balancers \(balancerRows)")
        let healthTable = try cli(["health"])
        expect(healthTable.status == 0 && healthTable.stdout.contains("SERVING ZONE") && healthTable.stdout.contains("shiftedAway"),
               "health (table): expected the STATE and SERVING ZONE columns with shiftedAway: \(healthTable.summary)")
        let metrics = try runProcessBlocking(GatewayLabRequirements.curl ?? "curl", [
            "-sS", "--unix-socket", stateDir.appendingPathComponent("control.sock").path,
            "-H", "Authorization: Bearer \(ZonalShiftConfig.operatorToken)", "http://localhost/metrics",
        ], timeout: 20)
        expect(metrics.stdout.contains("zonelink_zonal_shift_active{zone=\"eu-central-1a\"} 1")
               && metrics.stdout.contains("zonelink_zonal_shift_active{zone=\"eu-central-1b\"} 0"),
               "GET /metrics: expected zonelink_zonal_shift_active 1 for zone a and 0 for zone b:\n\(metrics.summary.suffix(3000))")
        let table = try cli(["zone", "shift", "list"])
        expect(table.status == 0 && table.stdout.contains("eu-central-1a") && table.stdout.contains("maintenance of rack 7"),
               "zone shift list: \(table.summary)")

        // Shifting zone b too would leave the service dark: refused, naming it; forced, allowed.
        let dark = try cli(["zone", "shift", "start", "eu-central-1b"])
        expect(dark.status == 1 && dark.stderr.contains("epsrv-frankfurt1") && dark.stderr.contains("force"),
               "shifting the last zone: expected exit 1 naming the service and --force, got \(dark.summary)")
        let afterDark = try shiftedZones()
        expect(afterDark == ["eu-central-1a"], "the refused shift changed the list: \(afterDark)")

        // Restart (SIGTERM): the shift is still there.
        let (ended, exited, status) = ControlWalkthroughTests.stop(serve)
        expect(ended && exited && status == 0, "SIGTERM: ended \(ended), exit \(status)")
        transfer.stop()
        serve = try start()
        try waitReady("restart")
        let afterRestart = try shiftedZones()
        expect(afterRestart == ["eu-central-1a"], "after a restart the shift is gone: \(afterRestart)")
        try waitForAnswer(a, [eniB], "after a restart")

        // End it: zone a is back.
        let endedShift = try cli(["zone", "shift", "end", "eu-central-1a"])
        expect(endedShift.status == 0, "zone shift end: \(endedShift.summary)")
        try waitForAnswer(a, [eniA], "after the shift ended")
        let back = try bodies(b, eni: eniB, count: 20)
        expect(back.contains("ECS 2"), "after the shift ended, ECS 2 gets no flow: \(back)")
        let again = try cli(["zone", "shift", "end", "eu-central-1a"])
        expect(again.status == 1 && again.stderr.contains("no zonal shift"), "ending it twice: \(again.summary)")

        // Expiry ends a shift by itself.
        _ = try json(["zone", "shift", "start", "eu-central-1a", "--expires", "2s"])
        try waitForAnswer(a, [eniB], "shift with --expires 2s")
        let expired = try GatewayLab.poll(timeout: 30, every: 0.5) { try shiftedZones().isEmpty }
        expect(expired, "a shift with --expires 2s is still listed after 30 s\n\(logs())")
        try waitForAnswer(a, [eniA], "after expiry")

        // Drain: an open flow through zone a is closed at the deadline.
        let drained = try slowTransfer(a, eni: eniA, name: "slow-drained")
        defer { drained.stop() }
        let drainFlowing = try GatewayLab.poll(timeout: 30, every: 0.2) {
            try flows(through: eniA).contains { ($0["bytesFromTarget"] as? Int ?? 0) > 0 }
        }
        expect(drainFlowing, "no flow through \(eniA) for the drain step:\n\(drained.output)")
        _ = try json(["zone", "shift", "start", "eu-central-1a", "--drain", "1s"])
        let closed = try GatewayLab.poll(timeout: 30, every: 0.2) { try flows(through: eniA).isEmpty }
        expect(closed, "flows through \(eniA) remain 30 s after a --drain 1s shift: \((try? flows(through: eniA)) ?? [])\n\(logs())")
        // The reset reaches curl at once, but curl first reads what its socket already holds
        // (megabytes, at 256 KiB/s), so its end is waited for generously; a whole 64 MiB would
        // take 256 s.
        let cut = try GatewayLab.poll(timeout: 150, every: 0.5) { !drained.isRunning }
        expect(cut && !drained.output.contains("200 67108864"), "the flow through zone a was not closed by --drain 1s:\n\(drained.output)")
        _ = try cli(["zone", "shift", "end", "eu-central-1a"])

        expect(serveBox.value?.isRunning == true, "zonelink serve ended during the test.\n\(logs())")
        return failures
    }
}
