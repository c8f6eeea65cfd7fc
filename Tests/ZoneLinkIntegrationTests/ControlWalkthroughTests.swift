// The seed walkthrough through the command line only (issue 4): `zonelink serve` starts with
// infrastructure alone (accounts, VPCs, a load balancer with two nginx backends, no services or
// endpoints), then provider B and consumer A do every seed step with `zonelink service …` and
// `zonelink endpoint …` over the control socket, and curl and dig inside the lab's namespaces
// check that each step took effect live. Needs what the gateway tests need (GatewayLab.swift).
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The infrastructure-only config and the tokens of the walkthrough.
enum WalkthroughConfig {
    static let accountA = "1111111111111111"
    static let accountB = "2222222222222222"
    static let accountC = "3333333333333333"
    static let tokenA = "token-account-a"
    static let tokenB = "token-account-b"
    static let tokenC = "token-account-c"

    /// `ACCOUNT-ID sha256(token)` lines.
    static let tokensFile = """
        \(accountA) 6d5e0f37232987a8af9ad3e810e5e9a8d391626538984e5934b2f4f8c76ce410
        \(accountB) 27d5f05fab4d4b14498bb153fe78175f31396e1b4fe80feb0f4df3e9602af2dd
        \(accountC) 3219836609d7ee7ada29fac48e76c0240b9a8aa4caaf7d9dfa2b4b986cee1fa1

        """

    /// clb-1a's NAT address, in vsw-2a.
    static let zoneANAT = "192.168.23.240"

    static func yaml(namespaces ns: [LabVPC: String]) -> String {
        """
        # The seed's infrastructure only: services and endpoints come through the control API.
        region: eu-central-1
        domain: privatelink.internal
        dns:
          ttl: 60
        accounts:
          - {id: "\(accountA)", name: account-a}
          - {id: "\(accountB)", name: account-b}
          - {id: "\(accountC)", name: account-c}
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
                ingress:
                  - {protocol: tcp, ports: "80", source: 10.10.0.0/16}
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: \(ns[.vpc2]!)
            vswitches:
              - {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}
              - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
          - id: vpc-3
            account: account-c
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc3]!)
            dnsAddress: 10.10.0.2
            vswitches:
              - {id: vsw-3b, zone: eu-central-1b, cidr: 10.10.2.0/24}
            securityGroups:
              - id: sg-web
                ingress:
                  - {protocol: all, source: 10.10.0.0/16}
        loadBalancers:
          - id: clb-1
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(LabAddress.nat)]
            listeners:
              - protocol: tcp
                port: 80
                backendPort: 80
                scheduler: wrr
                backends:
                  - {address: \(LabAddress.ecs2), weight: 100}   # ECS 2
                  - {address: \(LabAddress.ecs3), weight: 100}   # ECS 3
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
          # Zone a, for the endpoint's second ENI (`endpoint zone add`): the same two nginx.
          - id: clb-1a
            account: account-b
            vpc: vpc-2
            zone: eu-central-1a
            natAddresses: [\(zoneANAT)]
            listeners:
              - protocol: tcp
                port: 80
                backendPort: 80
                backends:
                  - {address: \(LabAddress.ecs2)}
                  - {address: \(LabAddress.ecs3)}
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}

        """
    }
}

@Suite("Control plane walkthrough through the CLI", .serialized, .timeLimit(.minutes(3)),
       .enabled(if: GatewayLabRequirements.isRoot, "needs root (network namespaces, addresses, setns)"),
       .enabled(if: GatewayLabRequirements.ipPath != nil, "needs ip (iproute2)"),
       .enabled(if: GatewayLabRequirements.netnsWorks, "needs network namespaces: `ip netns add` / `ip netns exec` do not work on this machine"),
       .enabled(if: GatewayLabRequirements.toolsPresent,
                "needs nginx, haproxy, curl, dig, python3 and ss (run bash scripts/deps)"))
struct ControlWalkthroughTests {

    @Test("Seed walkthrough: B creates and whitelists, A's endpoint waits Disconnected, B accepts, traffic flows, B rejects, C is refused")
    func seedWalkthrough() async throws {
        let lab = try await offload { try GatewayLab.create(tag: "walk") }
        let serve = WalkthroughBox<LabProcess?>(nil)
        do {
            let failures = try await offload { try Self.walkthrough(lab, serve) }
            for failure in failures { Issue.record(Comment(rawValue: failure)) }
        } catch {
            await offloadQuietly { Self.stop(serve.value); lab.tearDown() }
            throw error
        }
        let (ended, exited, status) = await offloadQuietly { Self.stop(serve.value) }
        #expect(ended && exited && status == 0,
                "zonelink serve: after SIGTERM expected exit status 0 within 5 s, got ended \(ended), \(exited ? "exit" : "signal") \(status).\n\(serve.value.map { capTail($0.stderr, 4000) } ?? "")")
        await offloadQuietly { lab.tearDown() }
    }

    /// SIGTERM, SIGKILL after 5 s: (ended in time, exited normally, status).
    @discardableResult
    static func stop(_ process: LabProcess?) -> (Bool, Bool, Int32) {
        guard let p = process?.process else { return (true, true, 0) }
        guard p.isRunning else { return (true, p.terminationReason == .exit, p.terminationStatus) }
        p.terminate()
        guard waitForExit(p, timeout: 5) else {
            Glibc.kill(p.processIdentifier, SIGKILL)
            _ = waitForExit(p, timeout: 5)
            return (false, false, -1)
        }
        return (true, p.terminationReason == .exit, p.terminationStatus)
    }

    /// The steps, run off the test's task; returns the failed expectations (recorded by the test).
    static func walkthrough(_ lab: GatewayLab, _ serveBox: WalkthroughBox<LabProcess?>) throws -> [String] {
        var failures: [String] = []
        func expect(_ condition: Bool, _ message: @autoclosure () -> String = "") {
            if !condition { failures.append(message()) }
        }
        func require<T>(_ value: T?, _ message: @autoclosure () -> String) throws -> T {
            guard let value else { throw HarnessError(message()) }
            return value
        }
        try lab.startNginx(.ecs2)
        try lab.startNginx(.ecs3)

        // zonelink serve with the infrastructure alone.
        let binary = try Paths.requireZonelink()
        let config = lab.dir.appendingPathComponent("zonelink.yaml")
        try WalkthroughConfig.yaml(namespaces: lab.namespaces).write(to: config, atomically: true, encoding: .utf8)
        let stateDir = lab.dir.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        try WalkthroughConfig.tokensFile.write(to: stateDir.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
        let serve = try LabProcess(name: "zonelink", executable: binary.path,
                                   arguments: ["serve", "--config", config.path, "--state-dir", stateDir.path,
                                               "--threads", "1", "--log-level", "info"],
                                   dir: lab.dir)
        serveBox.value = serve
        lab.register(serve.pid)
        let logs = { "zonelink serve output (last lines):\n\(capTail(serve.stderr, 6000))" }

        /// `zonelink ARGS --state-dir D --token T`.
        func cli(_ token: String, _ args: [String]) throws -> ProcessResult {
            try runProcessBlocking(binary.path, args + ["--state-dir", stateDir.path, "--token", token], timeout: 20)
        }
        func object(_ r: ProcessResult, _ what: String) throws -> [String: Any] {
            guard r.exited, r.status == 0 else { throw HarnessError("\(what) failed:\n\(r.summary)\n\(logs())") }
            guard let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
                throw HarnessError("\(what) --json did not print a JSON object:\n\(r.summary)")
            }
            return o
        }

        // Ready: the control API answers, both backends are healthy, VPC 1's DNS listens.
        var lastHealth = ""
        let ready = try GatewayLab.poll(timeout: 25, every: 0.25) {
            guard serve.isRunning else { return true }
            let r = try cli(WalkthroughConfig.tokenB, ["health", "--json"])
            lastHealth = r.summary
            guard r.exited, r.status == 0,
                  let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                  let backends = o["backends"] as? [[String: Any]],  // clb-1 and clb-1a, two nginx each
                  backends.count == 4, backends.allSatisfy({ ($0["healthy"] as? Bool) == true }) else { return false }
            return try lab.listening(.vpc1, udp: true).contains("\(LabConsumer.vpc1.dns):53 ")
        }
        guard serve.isRunning else {
            throw HarnessError("zonelink serve exited early (status \(serve.process.terminationStatus)).\n\(logs())")
        }
        guard ready else {
            throw HarnessError("zonelink serve was not ready within 25 s (health: \(lastHealth)).\n\(logs())")
        }

        // B creates the service: manual accept, zone affinity on.
        let service = try object(try cli(WalkthroughConfig.tokenB, [
            "service", "create", "--resource", "eu-central-1b=clb-1", "--resource", "eu-central-1a=clb-1a",
            "--no-auto-accept", "--zone-affinity",
            "--id", "epsrv-walk", "--json",
        ]), "B: service create")
        expect(service["id"] as? String == "epsrv-walk" && service["account"] as? String == WalkthroughConfig.accountB)
        expect(service["autoAcceptConnections"] as? Bool == false && service["zoneAffinity"] as? Bool == true,
                "service create: expected manual accept and zone affinity, got \(service)")
        let shown = try cli(WalkthroughConfig.tokenB, ["service", "show", "epsrv-walk"])
        expect(shown.status == 0 && shown.stdout.contains("epsrv-walk") && shown.stdout.contains("Zone affinity:"),
                "service show (table): \(shown.summary)")

        // B whitelists A.
        let added = try cli(WalkthroughConfig.tokenB, ["service", "whitelist", "add", "epsrv-walk", WalkthroughConfig.accountA])
        expect(added.exited && added.status == 0, "B: whitelist add: \(added.summary)")
        let whitelist = try cli(WalkthroughConfig.tokenB, ["service", "whitelist", "list", "epsrv-walk"])
        expect(whitelist.status == 0 && whitelist.stdout.contains(WalkthroughConfig.accountA), "B: whitelist list: \(whitelist.summary)")

        // A creates the endpoint in VPC 1: Disconnected.
        let endpoint = try object(try cli(WalkthroughConfig.tokenA, [
            "endpoint", "create", "--service", "epsrv-walk", "--vpc", "vpc-1", "--zone", "eu-central-1b=vsw-1b",
            "--security-group", "sg-web", "--id", "ep-walk", "--json",
        ]), "A: endpoint create")
        expect(endpoint["connection"] as? String == "Disconnected", "A: endpoint create: expected Disconnected, got \(endpoint)")
        let placement = try require(endpoint["placement"] as? [String: Any], "endpoint create: no placement for its owner: \(endpoint)")
        let endpointName = try require(placement["dnsName"] as? String, "no dnsName in \(placement)")
        let eni = try require((placement["enis"] as? [[String: Any]])?.first, "no ENI in \(placement)")
        let zoneName = try require(eni["dnsName"] as? String, "no ENI dnsName in \(eni)")
        let address = try require(eni["address"] as? String, "no ENI address in \(eni)")
        let listed = try cli(WalkthroughConfig.tokenA, ["endpoint", "list"])
        expect(listed.status == 0 && listed.stdout.contains("ep-walk") && listed.stdout.contains("Disconnected"),
                "A: endpoint list (table): \(listed.summary)")

        // Its names resolve in VPC 1 (within a second or two of the change).
        let c = LabConsumer.vpc1
        for name in [zoneName, endpointName] {
            var last = ""
            let resolved = try GatewayLab.poll(timeout: 30, every: 0.2) {
                let (answer, r) = try lab.dig(c, name: name)
                last = r.summary
                return answer?.rcode == "NOERROR" && answer?.answerData("A") == [address]
            }
            expect(resolved, "dig -b \(c.client) @\(c.dns) \(name): expected A \(address) within 30 s, last:\n\(last)")
        }

        // Disconnected: curl through the zone name gets a reset.
        let waiting = try lab.curl(.vpc1, from: c.client, name: zoneName, address: address)
        expect(waiting.exited && [7, 56].contains(waiting.status) && !waiting.stdout.contains("ECS"),
                "Disconnected endpoint: expected a reset (curl exit 7 or 56), got \(waiting.summary)")

        // B accepts: Connected, and the zone name reaches both backends.
        let accepted = try object(try cli(WalkthroughConfig.tokenB, ["service", "connections", "accept", "epsrv-walk", "ep-walk", "--json"]),
                                  "B: connections accept")
        expect(accepted["connection"] as? String == "Connected", "accept: expected Connected, got \(accepted)")
        let connections = try cli(WalkthroughConfig.tokenB, ["service", "connections", "list", "epsrv-walk"])
        expect(connections.status == 0 && connections.stdout.contains("ep-walk") && connections.stdout.contains("Connected"),
                "B: connections list: \(connections.summary)")
        var lastCurl = ""
        let flowing = try GatewayLab.poll(timeout: 30, every: 0.1) {
            let r = try lab.curl(.vpc1, from: c.client, name: zoneName, address: address)
            lastCurl = r.summary
            return r.status == 0 && r.stdout.hasPrefix("ECS ")
        }
        expect(flowing, "after accept, curl http://\(zoneName)/ from \(c.client) did not reach a backend within 30 s; last:\n\(lastCurl)\n\(logs())")
        if flowing {
            let bodies = try (0..<20).map { _ in
                try lab.curl(.vpc1, from: c.client, name: zoneName, address: address).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            expect(bodies.contains("ECS 2") && bodies.contains("ECS 3"),
                    "20 requests through \(zoneName): expected both backends, got \(bodies)")
        }

        // A adds zone a: a second ENI, named and serving at once (the connection is Connected).
        let grown = try object(try cli(WalkthroughConfig.tokenA, [
            "endpoint", "zone", "add", "ep-walk", "eu-central-1a=vsw-1a", "--json",
        ]), "A: endpoint zone add")
        let zoneA = try require(((grown["placement"] as? [String: Any])?["enis"] as? [[String: Any]])?.first { $0["zone"] as? String == "eu-central-1a" },
                                "endpoint zone add: no ENI in eu-central-1a: \(grown)")
        let zoneAName = try require(zoneA["dnsName"] as? String, "no dnsName in \(zoneA)")
        let zoneAAddress = try require(zoneA["address"] as? String, "no address in \(zoneA)")
        var lastDig = ""
        let named = try GatewayLab.poll(timeout: 30, every: 0.2) {
            let (answer, r) = try lab.dig(c, name: zoneAName)
            lastDig = r.summary
            return answer?.rcode == "NOERROR" && answer?.answerData("A") == [zoneAAddress]
        }
        expect(named, "after zone add, dig \(zoneAName) did not answer A \(zoneAAddress) within 30 s; last:\n\(lastDig)")
        let reachedA = try GatewayLab.poll(timeout: 30, every: 0.1) {
            let r = try lab.curl(.vpc1, from: c.client, name: zoneAName, address: zoneAAddress)
            lastCurl = r.summary
            return r.status == 0 && r.stdout.hasPrefix("ECS ")
        }
        expect(reachedA, "after zone add, curl through \(zoneAName) (\(zoneAAddress)) did not reach a backend within 30 s; last:\n\(lastCurl)")

        // A removes zone a during a slow transfer through it (64 MiB at 256 KiB/s: minutes):
        // the flow leaves the NAT table at once, the transfer is cut short, the name goes.
        if let curl = GatewayLabRequirements.curl {
            let transfer = try lab.spawn(.vpc1, name: "slow-zone-a", [
                curl, "-sS", "-o", "/dev/null", "--interface", c.client, "--limit-rate", "256k", "--max-time", "200",
                "-w", "%{http_code} %{size_download}\n", "--resolve", "\(zoneAName):80:\(zoneAAddress)", "http://\(zoneAName)/big",
            ])
            defer { transfer.stop() }
            // A's own flows through the zone-a ENI, as `nat list --json` shows them to their owner.
            func flowsThroughZoneA() throws -> [[String: Any]] {
                let r = try cli(WalkthroughConfig.tokenA, ["nat", "list", "--json"])
                let rows = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]] ?? []
                return rows.filter { $0["eni"] as? String == "\(zoneAAddress):80" }
            }
            let started = try GatewayLab.poll(timeout: 30, every: 0.2) {
                try flowsThroughZoneA().contains { ($0["bytesFromTarget"] as? Int ?? 0) > 0 }
            }
            expect(started, "no flow through \(zoneAAddress):80 in nat list within 30 s of the transfer's start:\n\(transfer.output)")
            let shrunk = try object(try cli(WalkthroughConfig.tokenA, ["endpoint", "zone", "remove", "ep-walk", "eu-central-1a", "--json"]),
                                    "A: endpoint zone remove")
            expect(shrunk["zones"] as? [String] == ["eu-central-1b"], "zone remove: expected zones [eu-central-1b], got \(shrunk)")
            let forgotten = try GatewayLab.poll(timeout: 30, every: 0.1) { try flowsThroughZoneA().isEmpty }
            expect(forgotten, "the flow through the removed ENI is still in nat list 30 s after zone remove")
            // What the client's socket buffers already held still arrives; then the reset.
            let cut = try GatewayLab.poll(timeout: 60, every: 0.2) { !transfer.isRunning }
            expect(cut && !transfer.output.contains("200 67108864"),
                   "the transfer through the removed ENI was not cut short (still running after 60 s, or complete):\n\(transfer.output)")
            let gone = try GatewayLab.poll(timeout: 30, every: 0.2) {
                let (answer, r) = try lab.dig(c, name: zoneAName)
                lastDig = r.summary
                return answer?.rcode == "NXDOMAIN"
            }
            expect(gone, "after zone remove, dig \(zoneAName) is not NXDOMAIN within 30 s; last:\n\(lastDig)")
        }
        // The last zone stays: exit 1 and the rule named.
        let last = try cli(WalkthroughConfig.tokenA, ["endpoint", "zone", "remove", "ep-walk", "eu-central-1b"])
        expect(last.exited && last.status == 1 && last.stderr.contains("last zone"),
                "removing the last zone: expected exit 1 naming the rule, got \(last.summary)")

        // B rejects: curl fails again.
        let rejected = try object(try cli(WalkthroughConfig.tokenB, ["service", "connections", "reject", "epsrv-walk", "ep-walk", "--json"]),
                                  "B: connections reject")
        expect(rejected["connection"] as? String == "Rejected", "reject: expected Rejected, got \(rejected)")
        let refused = try GatewayLab.poll(timeout: 30, every: 0.1) {
            let r = try lab.curl(.vpc1, from: c.client, name: zoneName, address: address, maxTime: 2)
            lastCurl = r.summary
            return r.status != 0 && !r.stdout.contains("ECS")
        }
        expect(refused, "after reject, curl through \(zoneName) still succeeds after 30 s; last:\n\(lastCurl)")

        // C, not on the whitelist, cannot create an endpoint: the service is as unknown to it as
        // one that does not exist (404), and the error names the whitelist rule.
        let denied = try cli(WalkthroughConfig.tokenC, [
            "endpoint", "create", "--service", "epsrv-walk", "--vpc", "vpc-3", "--zone", "eu-central-1b=vsw-3b",
            "--security-group", "sg-web",
        ])
        expect(denied.exited && denied.status == 1 && denied.stderr.contains("whitelist"),
                "C (not whitelisted): expected exit 1 and an error naming the whitelist, got \(denied.summary)")
        expect(serve.isRunning, "zonelink serve ended during the walkthrough.\n\(logs())")
        return failures
    }
}

/// A value shared between the test and its offloaded work.
final class WalkthroughBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
