// The kernel data path end to end (docs/gateway.md, "Kernel data plane"): the gateway lab's
// seed topology with epsrv-frankfurt1 on `dataPlane: kernel`, so clb-1's flows are DNATed and
// SNATed by nftables in ZoneLink's gateway namespace instead of relayed. Needs what the gateway
// tests need, plus nft (Debian nftables) and a kernel with nf_tables NAT; skipped, saying which,
// otherwise.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum KernelLabRequirements {
    static let nft: String? = ["/usr/sbin/nft", "/sbin/nft"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

@Suite("Kernel data path in network namespaces", .serialized, .timeLimit(.minutes(3)),
       .enabled(if: GatewayLabRequirements.isRoot, "needs root (network namespaces, veth pairs, nftables)"),
       .enabled(if: GatewayLabRequirements.ipPath != nil, "needs ip (iproute2)"),
       .enabled(if: GatewayLabRequirements.netnsWorks, "needs network namespaces: `ip netns add` / `ip netns exec` do not work on this machine"),
       .enabled(if: GatewayLabRequirements.toolsPresent, "needs nginx, haproxy, curl, dig, python3 and ss (run bash scripts/deps)"),
       .enabled(if: KernelLabRequirements.nft != nil, "needs nft (Debian nftables; run bash scripts/deps)"))
struct KernelGatewayTests {
    /// The TCP idle timeout the kernel lab configures: conntrack's established timeout of an
    /// admitted flow must read it back (the kernel's own default is 5 days).
    static let tcpIdleSeconds = 4321

    /// The lab's config with epsrv-frankfurt1 (clb-1: ep-consumer1, ep-no80, ep-waiting,
    /// ep-consumer3, ep-consumer4) on the kernel path and the lab's own gateway namespace.
    static func yaml(_ lab: GatewayLab, gateway: String) -> String {
        let base = LabConfig.yaml(namespaces: lab.namespaces)
        let service = "  - id: epsrv-frankfurt1\n    account: account-b\n"
        let labGateway = "gateway:\n  spliceAfterExchanges: 16\n"
        precondition(base.contains(service), "the lab's config changed: epsrv-frankfurt1 not found")
        precondition(base.contains(labGateway), "the lab's config changed: its gateway section is not \(labGateway)")
        return base.replacingOccurrences(of: service, with: service + "    dataPlane: kernel\n")
            .replacingOccurrences(of: labGateway, with: labGateway + "  kernelNamespace: \(gateway)\n  tcpIdleTimeout: \(tcpIdleSeconds)s\n")
    }

    /// Runs `body` with the lab, nginx on both backends, the UDP echo server, a gateway
    /// namespace the test made itself (holding a table of its own) and zonelink serving.
    func withKernelLab(_ tag: String, _ body: (GatewayLab, GatewayServer, String) async throws -> Void) async throws {
        let lab = try await offload { try GatewayLab.create(tag: tag) }
        // Named with the lab's prefix: a lab left behind by a killed run is swept with it.
        let gateway = "\(lab.prefix)-gw"
        do {
            let server = try await offload { () throws -> GatewayServer in
                try lab.ip(["netns", "add", gateway])
                try Self.nft(gateway, ["add", "table", "inet", "labtest"])
                try Self.nft(gateway, ["add", "chain", "inet", "labtest", "in", "{ type filter hook input priority 0; policy accept; }"])
                try Self.nft(gateway, ["add", "rule", "inet", "labtest", "in", "counter"])
                try lab.startNginx(.ecs2)
                try lab.startNginx(.ecs3)
                try lab.startUDPEcho()
                let server = try GatewayServer(lab: lab, yaml: Self.yaml(lab, gateway: gateway))
                lab.server = server
                lab.register(server.process.pid)
                var last = ""
                let ready = try GatewayLab.poll(timeout: 30, every: 0.3) {
                    guard server.isRunning else { return true }
                    let r = try lab.curl(.vpc1)
                    last = r.summary
                    return r.stdout.hasPrefix("ECS ")
                }
                guard server.isRunning, ready else {
                    throw HarnessError("zonelink serve (kernel data path) not serving within 30 s; last request from vpc-1: \(last)\n\(server.logs)")
                }
                try lab.clearAccessLogs()
                return server
            }
            try await body(lab, server, gateway)
            _ = await offloadQuietly { server.terminate() }
        } catch {
            await offloadQuietly {
                lab.tearDown()
                _ = try? runProcessBlocking(GatewayLab.ip, ["netns", "del", gateway], timeout: 10)
            }
            throw error
        }
        await offloadQuietly {
            lab.tearDown()
            _ = try? runProcessBlocking(GatewayLab.ip, ["netns", "del", gateway], timeout: 10)
        }
    }

    /// `conntrack -L` in the gateway namespace: the lines of TCP entries to `eni`:80.
    static func conntrackEntries(_ lab: GatewayLab, gateway: String, eni: String) throws -> [String] {
        let r = try runProcessBlocking(GatewayLab.ip, ["netns", "exec", gateway, "conntrack", "-L", "-p", "tcp", "--dport", "80"], timeout: 10)
        guard r.exited, r.status == 0 else { throw HarnessError("conntrack -L in \(gateway) failed (Debian conntrack; run bash scripts/deps):\n\(r.summary)") }
        return r.stdout.split(separator: "\n").map(String.init).filter { $0.contains("dst=\(eni) ") }
    }

    /// Rewrites the served config with `change` and reloads it (SIGHUP).
    static func reload(_ server: GatewayServer, _ change: (String) -> String) throws {
        let yaml = try String(contentsOf: server.configURL, encoding: .utf8)
        let changed = change(yaml)
        guard changed != yaml else { throw HarnessError("the test's reload changes nothing: the lab's config changed?\n\(yaml)") }
        try changed.write(to: server.configURL, atomically: true, encoding: .utf8)
        kill(server.process.pid, SIGHUP)
    }

    @discardableResult
    static func nft(_ netns: String, _ arguments: [String]) throws -> ProcessResult {
        let r = try runProcessBlocking(GatewayLab.ip, ["netns", "exec", netns, KernelLabRequirements.nft!] + arguments, timeout: 10)
        guard r.exited, r.status == 0 else { throw HarnessError("nft \(arguments.joined(separator: " ")) in \(netns):\n\(r.summary)") }
        return r
    }

    @Test("Seed topology on the kernel path: both backends by weight, only the NAT address seen, SG denies, Disconnected gets no service; stop removes only ZoneLink's table and links")
    func seedTopology() async throws {
        try await withKernelLab("kernel") { lab, server, gateway in
            for c in LabConsumer.all {
                let results = try await offload { try (0..<40).map { _ in try lab.curl(c) } }
                let bodies = results.map { $0.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
                let failures = results.filter { !$0.exited || $0.status != 0 }
                #expect(failures.isEmpty, "\(c): \(failures.count) of 40 requests through the kernel NAT failed; first: \(failures.first?.summary ?? "")")
                let ecs2 = bodies.filter { $0 == "ECS 2" }.count, ecs3 = bodies.filter { $0 == "ECS 3" }.count
                // Equal weights, picked at random: fewer than 8 of 40 happens about once in 10^5 runs.
                #expect(ecs2 >= 8 && ecs3 >= 8, "\(c): expected both backends (equal weights), got ECS 2 ×\(ecs2), ECS 3 ×\(ecs3)")
            }
            var sources: [String: Int] = [:]
            for backend in LabBackend.allCases {
                for line in lab.accessLog(backend) where !line.contains("/healthz") {
                    sources[NATFlow.host(String(line.split(separator: " ").first ?? "")), default: 0] += 1
                }
            }
            #expect(Set(sources.keys) == [LabAddress.nat], "backends saw sources \(sources), expected only the NAT address \(LabAddress.nat)")

            // Nothing listens on a kernel ENI: the relay does not carry these flows.
            let listening = try await offload { try lab.listening(.vpc1, udp: false) }
            #expect(!listening.contains("\(LabConsumer.vpc1.eni):80 "), "the relay listens on a kernel ENI:\n\(listening)")

            let no80 = "ep-no80.epsrv-frankfurt1.eu-central-1.privatelink.internal"
            let denied = try await offload { try lab.curl(.vpc1, from: LabConsumer.vpc1.client, name: no80, address: LabAddress.eniNo80, maxTime: 4) }
            #expect(denied.exited && denied.status != 0 && !denied.stdout.contains("ECS"),
                    "ep-no80 (no rule for tcp/80 from 10.10.2.1): expected no answer, got \(denied.summary)")
            let allowed = try await offload { try lab.curl(.vpc1, from: LabAddress.zoneAClient, name: no80, address: LabAddress.eniNo80) }
            #expect(allowed.exited && allowed.status == 0 && allowed.stdout.hasPrefix("ECS "),
                    "ep-no80 from 10.10.1.7 (allowed by tcp 1-80 from 10.10.1.0/24): expected a backend, got \(allowed.summary)")
            let waiting = try await offload {
                try lab.curl(.vpc1, from: LabConsumer.vpc1.client, name: "ep-waiting.epsrv-frankfurt1.eu-central-1.privatelink.internal",
                             address: LabAddress.eniWaiting, maxTime: 4)
            }
            #expect(waiting.exited && waiting.status != 0 && !waiting.stdout.contains("ECS"),
                    "ep-waiting (Disconnected): expected no service, got \(waiting.summary)")

            // While ZoneLink runs, the gateway namespace's `local` table comes after its mark rules.
            let rulesRunning = try await offload { try lab.ip(["-n", gateway, "rule", "show"]).stdout }
            let running = rulesRunning.split(separator: "\n").map { $0.replacingOccurrences(of: "\t", with: " ") }
            #expect(running.contains("300: from all lookup local") && !running.contains("0: from all lookup local"),
                    "the local rule should follow ZoneLink's rules (priority 300):\n\(rulesRunning)")

            // Stop: ZoneLink's table and links go, the test's own table stays.
            let (ended, exited, status) = await offloadQuietly { server.terminate() }
            #expect(ended && exited && status == 0, "zonelink serve: SIGTERM should end it with status 0.\n\(server.logs)")
            let tables = try await offload { try Self.nft(gateway, ["list", "tables"]).stdout }
            #expect(!tables.contains("zonelink") && tables.contains("table inet labtest"),
                    "after stop the gateway namespace should hold the test's table only, holds:\n\(tables)")
            let rule = try await offload { try Self.nft(gateway, ["list", "table", "inet", "labtest"]).stdout }
            #expect(rule.contains("counter"), "the test's own rule is gone:\n\(rule)")
            let links = try await offload { try lab.ip(["-n", gateway, "-o", "link", "show"]).stdout }
            #expect(!links.contains("zlg"), "ZoneLink's veths are still in the gateway namespace:\n\(links)")
            // The namespace is the test's own: its routing rules are as the kernel made them.
            let rulesAfter = try await offload { try lab.ip(["-n", gateway, "rule", "show"]).stdout }
            #expect(rulesAfter.split(separator: "\n").map { $0.replacingOccurrences(of: "\t", with: " ") }
                        == ["0: from all lookup local", "32766: from all lookup main", "32767: from all lookup default"],
                    "after stop the gateway namespace's rules should be the kernel's own:\n\(rulesAfter)")
            for vpc in [LabVPC.vpc1, .vpc2, .vpc3, .vpc4] {
                let vpcLinks = try await offload { try lab.ip(["-n", lab.ns(vpc), "-o", "link", "show"]).stdout }
                #expect(!vpcLinks.contains("zonelink0"), "\(vpc.id) still has ZoneLink's veth:\n\(vpcLinks)")
            }
        }
    }

    @Test("A stopped backend leaves the kernel table within interval × unhealthyThreshold (+1 interval); back when restarted")
    func healthFailover() async throws {
        try await withKernelLab("kernel-health") { lab, server, gateway in
            let c = LabConsumer.vpc1
            await offloadQuietly { lab.stopNginx(.ecs3) }
            let bound = LabConfig.interval * LabConfig.unhealthyThreshold + LabConfig.interval
            try await offload { sleepSeconds(bound) }
            // The health transition replaced the table: ECS 3 is out of the DNAT map.
            let after = try await offload { try (0..<12).map { _ in try lab.curl(c) } }
            let bad = after.filter { $0.status != 0 || $0.stdout != "ECS 2\n" }
            let table = try await offload { try Self.nft(gateway, ["list", "table", "ip", "zonelink"]).stdout }
            #expect(bad.isEmpty, "\(bound) s after ECS 3 stopped every request should reach ECS 2; \(bad.count) of 12 did not, first: \(bad.first?.summary ?? "")\n\(table)\n\(server.logs)")
            #expect(!table.contains(LabAddress.ecs3 + " . 80"), "ECS 3 is still in the table:\n\(table)")
            _ = try await offload { try lab.startNginx(.ecs3) }
            let back = LabConfig.interval * LabConfig.healthyThreshold + LabConfig.interval
            let (returned, seen) = try await offload { () throws -> (Bool, Set<String>) in
                var seen: Set<String> = []
                let returned = try GatewayLab.poll(timeout: back + 10, every: 0.2) {
                    seen.insert(try lab.curl(c).stdout)
                    return seen.contains("ECS 3\n")
                }
                return (returned, seen)
            }
            #expect(returned, "ECS 3 restarted: expected it back in the kernel table, requests saw only \(seen)")
        }
    }

    @Test("Two consumer VPCs, same client address and port to the same ENI address and port, at the same time: both flows work")
    func overlappingFlows() async throws {
        try await withKernelLab("kernel-overlap") { lab, server, gateway in
            let python = try #require(GatewayLabRequirements.python3, "python3 is missing")
            // Connects from client:40123 to eni:80, waits for the file `go` to exist (both
            // connections open at once), then sends a request and prints the status line and body.
            let script = """
                import os, socket, sys, time
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((sys.argv[1], 40123))
                s.settimeout(20)
                s.connect((sys.argv[2], 80))
                open(sys.argv[3] + ".open", "w").close()
                deadline = time.time() + 20
                while not os.path.exists(sys.argv[3]) and time.time() < deadline:
                    time.sleep(0.05)
                s.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                print(data.decode(errors="replace").split("\\r\\n\\r\\n", 1)[-1].strip())
                """
            let go = lab.dir.appendingPathComponent("go").path
            let clients = [LabConsumer.vpc1, LabConsumer.vpc3]
            let processes = try clients.map { c in
                try lab.spawn(c.vpc, name: "overlap-\(c.vpc.rawValue)", [python, "-c", script, c.client, c.eni, go + "-" + c.vpc.rawValue])
            }
            let bothOpen = try await offload {
                try GatewayLab.poll(timeout: 20, every: 0.1) {
                    clients.allSatisfy { FileManager.default.fileExists(atPath: go + "-" + $0.vpc.rawValue + ".open") }
                }
            }
            let entries = try await offload {
                try runProcessBlocking(GatewayLab.ip, ["netns", "exec", gateway, "conntrack", "-L", "-p", "tcp", "--dport", "80"], timeout: 10)
            }
            // The NAT table lists them as two rows, one per VPC, each with its own endpoint and
            // NAT port: read from conntrack, keyed by the consumer link's zone.
            let listed = try await offload { try server.natFlows() }
            switch listed {
            case .failure(let error): Issue.record("\(error)")
            case .success(let flows):
                let rows = flows.filter { $0.client == "10.10.2.1:40123" && $0.eni == "10.10.2.4:80" }
                #expect(Set(rows.map(\.vpc)) == ["vpc-1", "vpc-3"] && rows.count == 2,
                        "nat list should show the two flows as two rows (vpc-1, vpc-3), shows:\n\(flows.map(\.description).joined(separator: "\n"))")
                #expect(Set(rows.map(\.endpoint)) == ["ep-consumer1", "ep-consumer3"], "\(rows)")
                // SNAT keeps the reply tuples apart: (target, NAT address:port) differ.
                #expect(Set(rows.map { "\($0.target) \($0.nat)" }).count == 2 && rows.allSatisfy { NATFlow.host($0.nat) == LabAddress.nat }, "\(rows)")
                #expect(rows.allSatisfy { !$0.missingKeys && $0.protocolName == "tcp" }, "\(rows)")
            }
            for c in clients { FileManager.default.createFile(atPath: go + "-" + c.vpc.rawValue, contents: nil) }
            let finished = try await offload {
                try GatewayLab.poll(timeout: 25, every: 0.1) { processes.allSatisfy { !$0.isRunning } }
            }
            #expect(bothOpen, "both connections from 10.10.2.1:40123 to 10.10.2.4:80 (vpc-1 and vpc-3) should be open at once:\n\(processes.map(\.output).joined(separator: "\n"))")
            #expect(finished, "the two clients did not finish:\n\(processes.map(\.output).joined(separator: "\n"))")
            for p in processes {
                #expect(p.stdout.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("ECS "), "\(p.name): expected a backend's answer, got:\n\(p.output)")
            }
            if entries.exited, entries.status == 0 {
                let rows = entries.stdout.split(separator: "\n").filter { $0.contains("sport=40123") && $0.contains("dst=10.10.2.4") }
                #expect(rows.count == 2 && Set(rows.compactMap { $0.split(separator: " ").first { $0.hasPrefix("zone-orig=") } }).count == 2,
                        "conntrack in the gateway namespace should hold the two flows as two entries, each in its VPC's zone, holds:\n\(entries.stdout)")
            }
            _ = server
        }
    }

    @Test("A kernel flow is in nat list like a relayed one (bytes, NAT, target, age) with conntrack's timeout from tcpIdleTimeout; rejecting its endpoint mid-transfer stops it and deletes its entries")
    func rejectStopsTransfer() async throws {
        try await withKernelLab("kernel-reject") { lab, server, gateway in
            let c = LabConsumer.vpc1
            let python = try #require(GatewayLabRequirements.python3, "python3 is missing")
            // 64 MiB read at about 1 MiB/s into a 64 KiB receive buffer: still running when the
            // endpoint is rejected, and the window is always nearly shut, so the client keeps
            // sending window updates. A deleted conntrack entry tells neither end; the next
            // packet either sends is refused with a reset. (curl's buffer grows to megabytes: a
            // reject in its first seconds left it waiting, unaware, for data that never came.)
            let script = """
                import socket, sys, time
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                s.bind((sys.argv[1], 0))
                s.settimeout(100)
                s.connect((sys.argv[2], 80))
                s.sendall(b"GET /big HTTP/1.1\\r\\nHost: lab\\r\\nConnection: close\\r\\n\\r\\n")
                got, start = 0, time.monotonic()
                try:
                    while got < 64 << 20 and time.monotonic() - start < 100:
                        data = s.recv(16384)
                        if not data:
                            break
                        got += len(data)
                        time.sleep(len(data) / (1 << 20))
                    print(got, "end")
                except OSError as e:
                    print(got, "error", e)
                """
            let transfer = try lab.spawn(c.vpc, name: "transfer", [python, "-c", script, c.client, c.eni])
            let (listed, last) = try await offload { () throws -> (NATFlow?, String) in
                var found: NATFlow?
                var last = ""
                _ = try GatewayLab.poll(timeout: 30, every: 0.3) {
                    switch try server.natFlows() {
                    case .failure(let error): last = "\(error)"
                    case .success(let flows):
                        last = flows.map(\.description).joined(separator: "\n")
                        found = flows.first { $0.vpc == "vpc-1" && $0.eni == "\(c.eni):80" && ($0.bytesFromTarget ?? 0) > 100_000 }
                    }
                    return found != nil
                }
                return (found, last)
            }
            let row = try #require(listed, "nat list should show the kernel transfer (vpc-1 → \(c.eni):80, bytes from the target growing); last:\n\(last)\n\(transfer.output)")
            #expect(row.endpoint == c.endpoint && row.protocolName == "tcp" && NATFlow.host(row.client) == c.client, "\(row)")
            #expect(NATFlow.host(row.nat) == LabAddress.nat && [LabAddress.ecs2, LabAddress.ecs3].contains(NATFlow.host(row.target))
                    && NATFlow.port(row.target) == 80, "\(row)")
            #expect((row.bytesFromClient ?? 0) > 0 && (row.ageSeconds ?? -1) > 0, "bytes each way and an age (conntrack accounting and timestamps): \(row)")

            // Conntrack's established timeout is ZoneLink's (the `ct timeout` object), not the
            // kernel's 5 days, also after a reload replaced the table (it keeps the object).
            try await offload {
                try Self.reload(server) {
                    $0.replacingOccurrences(
                        of: "address: \(LabAddress.eniExternal)}]\n    connection: Connected",
                        with: "address: \(LabAddress.eniExternal)}]\n    connection: Disconnected")
                }
            }
            let reloaded = try await offload { GatewayLab.poll(timeout: 20, every: 0.2) { server.logs.contains("reloaded") } }
            #expect(reloaded, "the reload was not applied:\n\(server.logs)")
            let entries = try await offload { try Self.conntrackEntries(lab, gateway: gateway, eni: c.eni) }
            let established = entries.filter { $0.contains("ESTABLISHED") && $0.contains("zone-orig=1") }
            let timeout = established.first.flatMap { line in line.split(separator: " ").dropFirst(2).first.flatMap { Int($0) } }
            #expect(timeout.map { $0 > Self.tcpIdleSeconds - 120 && $0 <= Self.tcpIdleSeconds } == true,
                    "the transfer's entry should expire after tcpIdleTimeout (\(Self.tcpIdleSeconds) s), conntrack says:\n\(entries.joined(separator: "\n"))")

            try await offload {
                try Self.reload(server) {
                    $0.replacingOccurrences(
                        of: "zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(c.eni)}]\n    connection: Connected",
                        with: "zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(c.eni)}]\n    connection: Rejected")
                }
            }
            let stopped = try await offload { try GatewayLab.poll(timeout: 30, every: 0.2) { !transfer.isRunning } }
            #expect(stopped, "the transfer should stop once ep-consumer1 is rejected, still running after 30 s\n\(server.logs)")
            let downloaded = transfer.stdout.split(separator: " ").first.flatMap { Int($0) } ?? -1
            #expect(downloaded >= 0 && downloaded < 64 << 20, "the transfer should have been cut short, got \(downloaded) bytes\n\(transfer.output)")
            let (gone, remaining) = try await offload { () throws -> (Bool, [String]) in
                var remaining: [String] = []
                let gone = try GatewayLab.poll(timeout: 15, every: 0.3) {
                    remaining = try Self.conntrackEntries(lab, gateway: gateway, eni: c.eni).filter { $0.contains("zone-orig=1") && $0.contains("mark=") && !$0.contains("mark=0 ") }
                    return remaining.isEmpty
                }
                return (gone, remaining)
            }
            #expect(gone, "ep-consumer1's conntrack entries should be deleted, still:\n\(remaining.joined(separator: "\n"))\n\(server.logs)")
            let after = try await offload { try server.natFlows() }
            if case .success(let flows) = after {
                #expect(!flows.contains { $0.endpoint == c.endpoint }, "a rejected endpoint's flows are not listed: \(flows)")
            }
            // The other consumer of the same ENI address is untouched.
            let vpc3 = try await offload { try lab.curl(.vpc3) }
            #expect(vpc3.stdout.hasPrefix("ECS "), "vpc-3 (same ENI address, still Connected) should be served: \(vpc3.summary)")
        }
    }

    @Test("Reloads (SIGHUP) changing an unrelated service while HTTP requests run through a kernel ENI: no request fails")
    func reloadUnderLoad() async throws {
        try await withKernelLab("kernel-reload") { lab, server, gateway in
            let python = try #require(GatewayLabRequirements.python3, "python3 is missing")
            let c = LabConsumer.vpc1
            // 4 threads of requests, each on a new connection (nginx closes after each), until
            // the stop file appears (or 20,000 requests a thread: bounded); prints "started",
            // then "done <ok> <failed>" and the first failures. The test stops it after its
            // reloads, so the reloads never race the load's end, however fast the machine.
            let stop = lab.dir.appendingPathComponent("load-stop").path
            let script = """
                import http.client, os, sys, threading
                ok, failed, errors = [0], [0], []
                lock = threading.Lock()
                def run():
                    for _ in range(20000):
                        if os.path.exists(sys.argv[3]):
                            break
                        try:
                            conn = http.client.HTTPConnection(sys.argv[2], 80, timeout=10, source_address=(sys.argv[1], 0))
                            conn.request("GET", "/")
                            body = conn.getresponse().read()
                            conn.close()
                            good = body.startswith(b"ECS ")
                        except Exception as e:
                            good = False
                            with lock:
                                errors.append(repr(e))
                        with lock:
                            if good: ok[0] += 1
                            else: failed[0] += 1
                print("started", flush=True)
                threads = [threading.Thread(target=run) for _ in range(4)]
                for t in threads: t.start()
                for t in threads: t.join()
                print("done", ok[0], failed[0])
                print("\\n".join(errors[:5]))
                """
            let load = try lab.spawn(c.vpc, name: "load", [python, "-c", script, c.client, c.eni, stop])
            // Four reloads while the load runs, each a change to epsrv-external (relayed, not
            // the kernel service): the kernel table is replaced whole every time.
            let started = try await offload { try GatewayLab.poll(timeout: 20, every: 0.05) { load.stdout.hasPrefix("started") } }
            try #require(started, "the load did not start:\n\(load.output)")
            var reloads = 0
            for round in 0..<4 {
                try await Task.sleep(for: .milliseconds(250))
                guard load.isRunning else { break }
                let (from, to) = round % 2 == 0 ? ("Connected", "Disconnected") : ("Disconnected", "Connected")
                try await offload {
                    try Self.reload(server) {
                        $0.replacingOccurrences(
                            of: "address: \(LabAddress.eniExternal)}]\n    connection: \(from)",
                            with: "address: \(LabAddress.eniExternal)}]\n    connection: \(to)")
                    }
                }
                reloads += 1
            }
            // Requests keep running while the last reload is applied, then the load stops.
            let ran = reloads
            let applied = try await offload { () -> Int in
                var count = 0
                _ = GatewayLab.poll(timeout: 20, every: 0.2) {
                    count = server.logs.components(separatedBy: "reloaded").count - 1
                    return count >= ran
                }
                return count
            }
            FileManager.default.createFile(atPath: stop, contents: Data())
            let finished = try await offload { try GatewayLab.poll(timeout: 120, every: 0.2) { !load.isRunning } }
            #expect(finished, "the load did not stop within 120 s of being told to\n\(load.output)")
            let summary = load.stdout.split(separator: "\n").first { $0.hasPrefix("done ") }.map { $0.split(separator: " ") } ?? []
            let ok = summary.count == 3 ? Int(summary[1]) : nil, failed = summary.count == 3 ? Int(summary[2]) : nil
            #expect((ok ?? 0) > 0 && failed == 0, "every request should succeed across \(reloads) reloads; \(load.output)\n\(server.logs)")
            #expect(reloads == 4, "the load ended before the reloads: it stops only when told to, or after 20,000 requests a thread (\(reloads) reloads ran)\n\(load.output)")
            #expect(applied >= reloads, "each SIGHUP should be applied (\(applied) of \(reloads)):\n\(server.logs)")
            _ = gateway
        }
    }
}
