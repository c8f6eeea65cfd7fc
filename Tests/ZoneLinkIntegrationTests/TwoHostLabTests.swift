// Two ZoneLink hosts on one PostgreSQL store, in real network namespaces (issue 9): the seed
// walkthrough across the hosts and the failover of a host, as `docs/scale.md` tells an operator
// to run them.
//
//   VPC 1  consumer, account A, namespace vpc1: client 10.10.1.7 (zone a), client 10.10.2.1
//          (zone b); host a's DNS 10.10.0.2, host b's DNS 10.10.0.3; the ENIs
//   VPC 2  provider, account B, namespace vpc2: nginx "ECS 2" 192.168.24.200, "ECS 3"
//          192.168.24.12, behind clb-1a (zone a, NAT 192.168.23.240), clb-1b (zone b, backup
//          zone a, NAT 192.168.24.240 at home and 192.168.23.241 while moved) and clb-2b
//          (zone b, no backup zone, NAT 192.168.24.241)
//
// Host a (`host: {id: gw-a, zones: [eu-central-1a]}`) and host b (`gw-b`, zone b) are two
// `zonelink serve` processes in the root namespace, each with its own state directory (so its
// own control socket), both changing the two VPC namespaces. Their config files differ only in
// `host` and VPC 1's `dnsAddress`: each host answers DNS on an address of its own.
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

enum TwoHostLabConfig {
    static let operatorToken = "token-two-host-operator"
    static let dnsA = "10.10.0.2"
    static let dnsB = "10.10.0.3"
    static let clientA = LabAddress.zoneAClient
    static let clientB = LabConsumer.vpc1.client
    /// clb-1a's NAT address (zone a).
    static let natA = "192.168.23.240"
    /// clb-1b's NAT addresses: at home in zone b, and in its backup zone a.
    static let natBHome = "192.168.24.240"
    static let natBBackup = "192.168.23.241"
    /// clb-2b's NAT address (zone b, no backup zone).
    static let natPlain = "192.168.24.241"

    static func tokens() -> String {
        WalkthroughConfig.tokensFile + "operator \(sha256Hex(operatorToken))\n"
    }

    /// The config file of one host: `id` carries `zone`; its DNS in VPC 1 listens on `dns`.
    static func yaml(host id: String, zone: String, dns: String, namespaces ns: [LabVPC: String]) -> String {
        let check = "healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}"
        return """
        # Two hosts, one catalog (Tests/ZoneLinkIntegrationTests/TwoHostLabTests.swift): host \(id).
        host: {id: \(id), zones: [\(zone)]}
        region: eu-central-1
        domain: privatelink.internal
        dns:
          ttl: 1
        accounts:
          - {id: "\(WalkthroughConfig.accountA)", name: account-a}
          - {id: "\(WalkthroughConfig.accountB)", name: account-b}
          - {id: "\(WalkthroughConfig.accountC)", name: account-c}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc1]!)
            dnsAddress: \(dns)
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
              - {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}
              - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
        loadBalancers:
          - id: clb-1a
            account: account-b
            vpc: vpc-2
            zone: eu-central-1a
            natAddresses: [\(natA)]
            listeners:
              - protocol: tcp
                port: 80
                backends: [{address: \(LabAddress.ecs2)}, {address: \(LabAddress.ecs3)}]
                \(check)
          - id: clb-1b
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            backupZone: eu-central-1a
            natAddresses: [\(natBHome), \(natBBackup)]
            listeners:
              - protocol: tcp
                port: 80
                backends: [{address: \(LabAddress.ecs2)}, {address: \(LabAddress.ecs3)}]
                \(check)
          - id: clb-2b
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(natPlain)]
            listeners:
              - protocol: tcp
                port: 80
                backends: [{address: \(LabAddress.ecs2)}, {address: \(LabAddress.ecs3)}]
                \(check)

        """
    }
}

/// One `zonelink serve` of the lab: its config, state directory and process.
final class LabHost: @unchecked Sendable {
    let name: String
    let dns: String
    let config: URL
    let stateDir: URL
    let storeURL: String
    let lab: GatewayLab
    private let lock = NSLock()
    private var processes: [LabProcess] = []

    init(lab: GatewayLab, id: String, zone: String, dns: String, storeURL: String) throws {
        name = id
        self.dns = dns
        self.lab = lab
        self.storeURL = storeURL
        config = lab.dir.appendingPathComponent("\(id).yaml")
        try TwoHostLabConfig.yaml(host: id, zone: zone, dns: dns, namespaces: lab.namespaces)
            .write(to: config, atomically: true, encoding: .utf8)
        stateDir = lab.dir.appendingPathComponent("state-\(id)")
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        try TwoHostLabConfig.tokens().write(to: stateDir.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
    }

    /// The running process (the last one started).
    var process: LabProcess? { lock.withLock { processes.last } }
    var isRunning: Bool { process?.isRunning == true }

    /// Starts `zonelink serve` (each start's output in a file of its own).
    func start() throws {
        let binary = try Paths.requireZonelink()
        let run = lock.withLock { processes.count }
        let p = try LabProcess(name: "zonelink-\(name)-\(run)", executable: binary.path,
                               arguments: ["serve", "--config", config.path, "--state-dir", stateDir.path, "--store", storeURL,
                                           "--threads", "1", "--log-level", "info"],
                               dir: lab.dir)
        lock.withLock { processes.append(p) }
        lab.register(p.pid)
    }

    /// kill -9, and waits for the end.
    func kill() {
        guard let p = process, p.isRunning else { return }
        Glibc.kill(p.pid, SIGKILL)
        _ = waitForExit(p.process, timeout: 30)
    }

    /// SIGTERM (SIGKILL after 60 s): (ended in time, exited normally, status).
    @discardableResult
    func stop() -> (Bool, Bool, Int32) {
        guard let p = process?.process else { return (true, true, 0) }
        guard p.isRunning else { return (true, p.terminationReason == .exit, p.terminationStatus) }
        p.terminate()
        guard waitForExit(p, timeout: 60) else {
            Glibc.kill(p.processIdentifier, SIGKILL)
            _ = waitForExit(p, timeout: 5)
            return (false, false, -1)
        }
        return (true, p.terminationReason == .exit, p.terminationStatus)
    }

    /// Every run's log (standard error), the last lines of each.
    var logs: String {
        lock.withLock { processes }.map { "[\($0.name) stderr, last lines]\n\(capTail($0.stderr, 5000))" }.joined(separator: "\n")
    }

    /// `zonelink ARGS --state-dir D --token T` against this host.
    func cli(_ token: String, _ args: [String]) throws -> ProcessResult {
        try runProcessBlocking(Paths.requireZonelink().path, args + ["--state-dir", stateDir.path, "--token", token], timeout: 30)
    }

    /// The A records this host's DNS gives a client of VPC 1 at `client` for `name`.
    func answers(_ name: String, from client: String) throws -> [String] {
        let consumer = LabConsumer(vpc: .vpc1, client: client, dns: dns, endpoint: "", eni: "")
        return try lab.dig(consumer, name: name).0?.answerData("A") ?? []
    }
}

@Suite("Two hosts, one catalog, in network namespaces", .serialized, .timeLimit(.minutes(12)),
       .enabled(if: GatewayLabRequirements.isRoot, "needs root (network namespaces, addresses, setns)"),
       .enabled(if: GatewayLabRequirements.ipPath != nil, "needs ip (iproute2)"),
       .enabled(if: GatewayLabRequirements.netnsWorks, "needs network namespaces: `ip netns add` / `ip netns exec` do not work on this machine"),
       .enabled(if: GatewayLabRequirements.toolsPresent,
                "needs nginx, haproxy, curl, dig, python3 and ss (run bash scripts/deps)"),
       .enabled(if: PostgresServer.installed, "needs PostgreSQL's server (apt-get install postgresql-15; scripts/test does)"))
struct TwoHostLabTests {

    @Test("Seed walkthrough across two hosts (service on a, endpoint on b, accepted on a), then kill -9 host b: zone a answers alone, clb-1b serves from its backup zone through host a; host b back: flows return to it")
    func seedWalkthroughAndFailoverAcrossTwoHosts() async throws {
        let postgres: PostgresServer
        do {
            postgres = try await offload { try PostgresServer.create() }
        } catch {
            FileHandle.standardError.write(Data("SKIPPED: PostgreSQL cannot start here: \(error)\n".utf8))
            try Test.cancel("PostgreSQL cannot start here: \(error)")
        }
        let lab: GatewayLab
        do {
            lab = try await offload { try GatewayLab.create(tag: "twohost") }
        } catch {
            await offloadQuietly { postgres.remove() }
            throw error
        }
        let hosts = WalkthroughBox<[LabHost]>([])
        let tearDown: @Sendable () -> Void = {
            for host in hosts.value { host.stop() }
            lab.tearDown()
            postgres.remove()
        }
        do {
            let failures = try await offload { try Self.steps(lab, postgres, hosts) }
            for failure in failures { Issue.record(Comment(rawValue: failure)) }
            let stopped = await offloadQuietly { hosts.value.map { ($0.name, $0.stop(), $0.logs) } }
            for (name, (ended, exited, status), logs) in stopped {
                #expect(ended && exited && status == 0,
                        "host \(name): after SIGTERM expected exit status 0, got ended \(ended), \(exited ? "exit" : "signal") \(status).\n\(logs)")
            }
        } catch {
            await offloadQuietly(tearDown)
            throw error
        }
        await offloadQuietly(tearDown)
    }

    static func steps(_ lab: GatewayLab, _ postgres: PostgresServer, _ hostsBox: WalkthroughBox<[LabHost]>) throws -> [String] {
        var failures: [String] = []
        func expect(_ condition: Bool, _ message: @autoclosure () -> String = "") {
            if !condition { failures.append(message()) }
        }
        func require<T>(_ value: T?, _ message: @autoclosure () -> String) throws -> T {
            guard let value else { throw HarnessError(message()) }
            return value
        }
        let config = TwoHostLabConfig.self
        try lab.startNginx(.ecs2)
        try lab.startNginx(.ecs3)
        let a = try LabHost(lab: lab, id: "gw-a", zone: "eu-central-1a", dns: config.dnsA, storeURL: postgres.url)
        let b = try LabHost(lab: lab, id: "gw-b", zone: "eu-central-1b", dns: config.dnsB, storeURL: postgres.url)
        hostsBox.value = [a, b]
        let logs = { "\(a.logs)\n\(b.logs)\n[postgres, last lines]\n\(capTail(postgres.log, 2000))" }

        /// Runs `args` against `host`; a 409 `conflict` (the other host committed first, this
        /// one had not heard of it yet) is sent again, as the docs tell scripts to.
        func cli(_ host: LabHost, _ token: String, _ args: [String]) throws -> ProcessResult {
            var r = try host.cli(token, args)
            let deadline = monotonicNow() + 60
            while r.status != 0 && r.stderr.contains("another host") && monotonicNow() < deadline {
                sleepSeconds(0.2)
                r = try host.cli(token, args)
            }
            return r
        }
        func object(_ r: ProcessResult, _ what: String) throws -> [String: Any] {
            guard r.exited, r.status == 0 else { throw HarnessError("\(what) failed:\n\(r.summary)\n\(logs())") }
            guard let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
                throw HarnessError("\(what) --json did not print a JSON object:\n\(r.summary)")
            }
            return o
        }
        /// Waits (generously: a busy 2-core machine, a 10 s lease) until `host` is up: the API
        /// answers, every backend is healthy, its DNS listens in VPC 1.
        func waitReady(_ host: LabHost, _ what: String) throws {
            var last = ""
            let ready = try GatewayLab.poll(timeout: 120, every: 0.5) {
                guard host.isRunning else { return true }
                let r = try host.cli(config.operatorToken, ["health", "--json"])
                last = r.summary
                guard r.exited, r.status == 0,
                      let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                      let backends = o["backends"] as? [[String: Any]], !backends.isEmpty,
                      backends.allSatisfy({ ($0["healthy"] as? Bool) == true }) else { return false }
                return try lab.listening(.vpc1, udp: true).contains("\(host.dns):53 ")
            }
            guard host.isRunning else { throw HarnessError("\(what): host \(host.name) exited.\n\(logs())") }
            guard ready else { throw HarnessError("\(what): host \(host.name) not ready within 120 s (health: \(last)).\n\(logs())") }
        }
        /// Waits until `host`'s DNS gives `client` exactly `wanted` for `name`.
        func waitForAnswer(_ host: LabHost, _ client: String, _ name: String, _ wanted: [String], _ what: String) throws {
            var last: [String] = []
            let ok = try GatewayLab.poll(timeout: 120, every: 0.25) {
                last = try host.answers(name, from: client)
                return last == wanted.sorted()
            }
            expect(ok, "\(what): host \(host.name)'s DNS (\(host.dns)) gave \(client) \(last) for \(name) within 120 s, expected \(wanted.sorted())\n\(logs())")
        }
        /// `count` requests from `client` through `eni`: their bodies, and the addresses the
        /// backends saw them come from (their access logs, emptied first).
        func requests(_ client: String, _ name: String, through eni: String, count: Int = 12) throws -> (bodies: [String], sources: Set<String>) {
            try lab.clearAccessLogs()
            let bodies = try (0..<count).map { _ in
                try lab.curl(.vpc1, from: client, name: name, address: eni).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            sleepSeconds(0.2)  // nginx writes its access log line as the request ends
            let lines = LabBackend.allCases.flatMap { lab.accessLog($0) }
            return (bodies, Set(lines.map { String($0.split(separator: ":").first ?? "") }))
        }

        // Both hosts, on one empty PostgreSQL database.
        try a.start()
        try waitReady(a, "start")
        try b.start()
        try waitReady(b, "start")

        // B creates the services through host a: epsrv-walk (manual accept, zone affinity, zone
        // b behind clb-1b with its backup zone) and epsrv-plain (zone b behind clb-2b).
        let tokenA = WalkthroughConfig.tokenA, tokenB = WalkthroughConfig.tokenB
        let service = try object(try cli(a, tokenB, [
            "service", "create", "--id", "epsrv-walk", "--resource", "eu-central-1a=clb-1a", "--resource", "eu-central-1b=clb-1b",
            "--no-auto-accept", "--zone-affinity", "--json",
        ]), "B on host a: service create epsrv-walk")
        expect(service["autoAcceptConnections"] as? Bool == false, "epsrv-walk: expected manual accept, got \(service)")
        _ = try object(try cli(a, tokenB, [
            "service", "create", "--id", "epsrv-plain", "--resource", "eu-central-1a=clb-1a", "--resource", "eu-central-1b=clb-2b",
            "--zone-affinity", "--auto-accept", "--json",
        ]), "B on host a: service create epsrv-plain")
        for id in ["epsrv-walk", "epsrv-plain"] {
            let added = try cli(a, tokenB, ["service", "whitelist", "add", id, WalkthroughConfig.accountA])
            expect(added.status == 0, "B on host a: whitelist add \(id): \(added.summary)")
        }

        // A creates both endpoints through host b (which learnt the services from the store).
        func createEndpoint(_ id: String, _ service: String) throws -> [String: Any] {
            try object(try cli(b, tokenA, [
                "endpoint", "create", "--id", id, "--service", service, "--vpc", "vpc-1",
                "--zone", "eu-central-1a=vsw-1a", "--zone", "eu-central-1b=vsw-1b", "--security-group", "sg-web", "--json",
            ]), "A on host b: endpoint create \(id)")
        }
        let walk = try createEndpoint("ep-walk", "epsrv-walk")
        expect(walk["connection"] as? String == "Disconnected", "ep-walk: expected Disconnected, got \(walk)")
        let plain = try createEndpoint("ep-plain", "epsrv-plain")
        expect(plain["connection"] as? String == "Connected", "ep-plain (auto accept): expected Connected, got \(plain)")

        // B accepts ep-walk through host a.
        let accepted = try object(try cli(a, tokenB, ["service", "connections", "accept", "epsrv-walk", "ep-walk", "--json"]),
                                  "B on host a: connections accept")
        expect(accepted["connection"] as? String == "Connected", "accept: expected Connected, got \(accepted)")

        /// An endpoint's name and its ENI addresses by zone, from its placement.
        func placement(_ shown: [String: Any]) throws -> (name: String, a: String, b: String) {
            let p = try require(shown["placement"] as? [String: Any], "no placement in \(shown)")
            let enis = p["enis"] as? [[String: Any]] ?? []
            func address(_ zone: String) throws -> String {
                try require(enis.first { $0["zone"] as? String == zone }?["address"] as? String, "no ENI in \(zone): \(shown)")
            }
            return (try require(p["dnsName"] as? String, "no dnsName in \(p)"), try address("eu-central-1a"), try address("eu-central-1b"))
        }
        let ep = try placement(walk)
        let pl = try placement(plain)
        // Both hosts see ep-walk Connected.
        for host in [a, b] {
            var last = ""
            let seen = try GatewayLab.poll(timeout: 60, every: 0.25) {
                let r = try host.cli(tokenA, ["endpoint", "show", "ep-walk", "--json"])
                last = r.summary
                return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["connection"] as? String == "Connected"
            }
            expect(seen, "host \(host.name) does not show ep-walk Connected within 60 s: \(last)")
        }

        // DNS on both hosts answers the same names with zone affinity.
        for host in [a, b] {
            try waitForAnswer(host, config.clientA, ep.name, [ep.a], "both hosts up, zone-a client, ep-walk")
            try waitForAnswer(host, config.clientB, ep.name, [ep.b], "both hosts up, zone-b client, ep-walk")
            try waitForAnswer(host, config.clientB, pl.name, [pl.b], "both hosts up, zone-b client, ep-plain")
        }

        // Through each host's ENI, both backends; each host's flows leave from its zone's NAT.
        var lastCurl = ""
        for (client, eni, what) in [(config.clientA, ep.a, "host a's zone-a ENI"), (config.clientB, ep.b, "host b's zone-b ENI")] {
            let flowing = try GatewayLab.poll(timeout: 60, every: 0.25) {
                let r = try lab.curl(.vpc1, from: client, name: ep.name, address: eni)
                lastCurl = r.summary
                return r.status == 0 && r.stdout.hasPrefix("ECS ")
            }
            expect(flowing, "curl through \(what) (\(eni)) did not reach a backend within 60 s; last:\n\(lastCurl)\n\(logs())")
        }
        let throughA = try requests(config.clientA, ep.name, through: ep.a, count: 20)
        expect(Set(throughA.bodies) == ["ECS 2", "ECS 3"], "20 requests through host a's ENI \(ep.a): expected both backends, got \(throughA.bodies)")
        expect(throughA.sources == [config.natA], "through host a's ENI the backends saw \(throughA.sources), expected clb-1a's NAT \(config.natA)")
        let throughB = try requests(config.clientB, ep.name, through: ep.b, count: 20)
        expect(Set(throughB.bodies) == ["ECS 2", "ECS 3"], "20 requests through host b's ENI \(ep.b): expected both backends, got \(throughB.bodies)")
        expect(throughB.sources == [config.natBHome], "through host b's ENI the backends saw \(throughB.sources), expected clb-1b's zone-b NAT \(config.natBHome)")

        // kill -9 host b. Within the lease, host a's DNS answers only ENIs living in zone a:
        // ep-plain's zone-b ENI goes, ep-walk's moves to zone a with clb-1b.
        b.kill()
        let killed = monotonicNow()
        try waitForAnswer(a, config.clientB, pl.name, [pl.a], "host b killed: ep-plain from a zone-b client")
        let answeredAfter = monotonicNow() - killed
        try waitForAnswer(a, config.clientA, pl.name, [pl.a], "host b killed: ep-plain from a zone-a client")
        try waitForAnswer(a, config.clientB, ep.name, [ep.a, ep.b], "host b killed: ep-walk (clb-1b in zone a) from a zone-b client")
        try waitForAnswer(a, config.clientA, ep.name, [ep.a, ep.b], "host b killed: ep-walk (clb-1b in zone a) from a zone-a client")
        // clb-1b keeps serving through host a, from its zone-a NAT address.
        let carried = try GatewayLab.poll(timeout: 120, every: 0.25) {
            let r = try lab.curl(.vpc1, from: config.clientB, name: ep.name, address: ep.b)
            lastCurl = r.summary
            return r.status == 0 && r.stdout.hasPrefix("ECS ")
        }
        let carriedAfter = monotonicNow() - killed
        expect(carried, "host b killed: curl through \(ep.b) did not reach a backend within 120 s; last:\n\(lastCurl)\n\(logs())")
        let moved = try requests(config.clientB, ep.name, through: ep.b)
        expect(moved.bodies.allSatisfy { $0.hasPrefix("ECS ") }, "host b killed: requests through \(ep.b) via host a: \(moved.bodies)\n\(logs())")
        expect(moved.sources == [config.natBBackup],
               "host b killed: the backends saw \(moved.sources) for flows through \(ep.b), expected clb-1b's backup-zone NAT \(config.natBBackup)")

        // Host a's health says so: clb-1b and ep-walk's zone-b ENI failed over to zone a.
        let health = try object(try a.cli(config.operatorToken, ["health", "--json"]), "host a: health")
        let balancer = (health["loadBalancers"] as? [[String: Any]] ?? []).first { $0["loadBalancer"] as? String == "clb-1b" }
        let eniRow = (health["zones"] as? [[String: Any]] ?? []).first { $0["endpoint"] as? String == "ep-walk" && $0["zone"] as? String == "eu-central-1b" }
        expect(balancer?["state"] as? String == "failedOver" && balancer?["servingZone"] as? String == "eu-central-1a"
               && eniRow?["state"] as? String == "failedOver" && eniRow?["servingZone"] as? String == "eu-central-1a",
               "host b killed: host a's health should mark clb-1b and ep-walk's zone-b ENI failedOver to eu-central-1a: \(health)")

        // Host b back: host a's DNS answers zone b's ENIs as zone b's again, new flows through
        // zone b's ENI go to host b (clb-1b's zone-b NAT address again).
        try b.start()
        let restarted = monotonicNow()
        try waitReady(b, "host b restarted")
        try waitForAnswer(a, config.clientB, pl.name, [pl.b], "host b back: ep-plain from a zone-b client")
        try waitForAnswer(a, config.clientB, ep.name, [ep.b], "host b back: ep-walk from a zone-b client")
        try waitForAnswer(b, config.clientB, ep.name, [ep.b], "host b back: ep-walk from a zone-b client, host b's DNS")
        var lastSources: Set<String> = []
        let returned = try GatewayLab.poll(timeout: 120, every: 0.5) {
            lastSources = try requests(config.clientB, ep.name, through: ep.b, count: 4).sources
            return lastSources == [config.natBHome]
        }
        let returnedAfter = monotonicNow() - restarted
        expect(returned, "host b back: flows through \(ep.b) still reach the backends from \(lastSources) after 120 s, expected \(config.natBHome)\n\(logs())")
        let healthBack = try object(try a.cli(config.operatorToken, ["health", "--json"]), "host a: health")
        let home = (healthBack["loadBalancers"] as? [[String: Any]] ?? []).first { $0["loadBalancer"] as? String == "clb-1b" }
        expect(home?["state"] as? String == "home" && home?["servingZone"] as? String == "eu-central-1b",
               "host b back: host a's health should show clb-1b home in eu-central-1b: \(healthBack)")
        let back = try requests(config.clientB, ep.name, through: ep.b, count: 20)
        expect(Set(back.bodies) == ["ECS 2", "ECS 3"] && back.sources == [config.natBHome],
               "host b back: 20 requests through \(ep.b): \(back.bodies) from \(back.sources)")
        // Host a stops (SIGTERM) while host b serves: the ENI address both hosts hold for
        // clb-1b stays, and flows through host b carry on.
        let (ended, exited, status) = a.stop()
        expect(ended && exited && status == 0, "host a: after SIGTERM expected exit status 0, got ended \(ended), \(exited ? "exit" : "signal") \(status)\n\(a.logs)")
        let left = try lab.loAddresses(.vpc1)
        expect(left.contains(ep.b), "host a's stop removed \(ep.b), which host b listens on: VPC 1 has \(left.sorted())")
        let afterStop = try requests(config.clientB, ep.name, through: ep.b, count: 4)
        expect(afterStop.bodies.allSatisfy { $0.hasPrefix("ECS ") } && afterStop.sources == [config.natBHome],
               "host a stopped: requests through host b's \(ep.b): \(afterStop.bodies) from \(afterStop.sources)\n\(logs())")
        print("two hosts in namespaces: host a's DNS dropped zone b's ENI \(String(format: "%.1f", answeredAfter)) s after kill -9 of host b (lease 10 s); clb-1b served through host a after \(String(format: "%.1f", carriedAfter)) s; flows back on host b \(String(format: "%.1f", returnedAfter)) s after its restart")
        expect(b.isRunning, "host b ended during the test.\n\(logs())")
        return failures
    }
}
