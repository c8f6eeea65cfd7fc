// Issue 2, test 6: `zonelink check`, and `zonelink serve` refusing a broken config.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("zonelink check", .timeLimit(.minutes(3)))
struct CheckTests {
    @Test("zones/local.yaml is valid")
    func localIsValid() async throws {
        let binary = try Paths.requireZonelink()
        let r = try await runProcess(binary.path, ["check", "--config", Paths.localYAML.path],
                                     cwd: Paths.packageRoot, timeout: 30)
        #expect(r.exited && r.status == 0, "zonelink check zones/local.yaml: expected exit 0.\n\(r.summary)")
        // The test configs (ports moved, absolute zone path) are valid too.
        let dir = try Paths.makeTempDir("check-ok")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("ok.yaml")
        try TestConfig.local().yaml.write(to: file, atomically: true, encoding: .utf8)
        let r2 = try await runProcess(binary.path, ["check", "--config", file.path], cwd: dir, timeout: 30)
        #expect(r2.exited && r2.status == 0, "zonelink check on a test config: expected exit 0.\n\(r2.summary)")
    }

    static func brokenConfig(_ dir: URL) throws -> (URL, TestConfig) {
        let config = try TestConfig.local { yaml in
            yaml.replacingOccurrences(of: "    service: epsrv-frankfurt1\n", with: "    service: epsrv-nowhere\n")
        }
        guard !config.yaml.contains("service: epsrv-frankfurt1\n") else { throw HarnessError("could not break the config") }
        let file = dir.appendingPathComponent("broken.yaml")
        try config.yaml.write(to: file, atomically: true, encoding: .utf8)
        return (file, config)
    }

    @Test("An endpoint referencing an unknown service: exit 1 and a keyed error")
    func brokenConfig() async throws {
        let binary = try Paths.requireZonelink()
        let dir = try Paths.makeTempDir("check-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (file, _) = try Self.brokenConfig(dir)
        let r = try await runProcess(binary.path, ["check", "--config", file.path], cwd: dir, timeout: 30)
        #expect(r.exited && r.status == 1, "zonelink check on a broken config: expected exit 1.\n\(r.summary)")
        #expect(r.stderr.contains("\(file.path): endpoints[0].service:"),
                "stderr must contain `\(file.path): endpoints[0].service:`.\n\(r.summary)")
    }

    @Test("zonelink serve on a broken config exits 1 without serving")
    func serveRefusesBrokenConfig() async throws {
        let binary = try Paths.requireZonelink()
        let dir = try Paths.makeTempDir("serve-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (file, config) = try Self.brokenConfig(dir)
        // Probe the listeners while it runs: nothing may answer.
        async let probe: Bool = offload {
            let client = try UDPClient()
            let deadline = monotonicNow() + 3
            var id: UInt16 = 0x100
            while monotonicNow() < deadline {
                id += 1
                for port in [config.pinnedPort, config.sourcePort] {
                    if client.query(DNSQuery.build(id: id, name: Names.domain, type: RRType.SOA), port: port, timeout: 0.1) != nil {
                        return true
                    }
                }
            }
            return false
        }
        let r = try await runProcess(binary.path, ["serve", "--config", file.path, "--threads", "1"], cwd: dir, timeout: 15)
        let answered = try await probe
        #expect(!r.timedOut && r.exited && r.status == 1, "zonelink serve on a broken config: expected exit 1 at once.\n\(r.summary)")
        #expect(!answered, "zonelink serve answered DNS queries with a broken config")
    }
}

@Suite("zonelink serve lifecycle", .timeLimit(.minutes(3)))
struct LifecycleTests {
    @Test("Logs one `listening` line per listener; SIGINT stops it with exit 0")
    func listeningAndSIGINT() async throws {
        let config = try TestConfig.local()
        let server = try ZoneLinkServer.launch(config, tag: "sigint")
        defer { server.kill(); server.cleanUp() }
        try await offload { try server.waitUntilReady() }
        // The line is written once bound; give the logger a moment to flush.
        var logs = ""
        for _ in 0..<20 {
            logs = server.logs
            if logs.contains("127.0.0.1:\(config.sourcePort)") && logs.contains("127.0.0.1:\(config.pinnedPort)") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        for port in [config.pinnedPort, config.sourcePort] {
            let lines = logs.split(separator: "\n").filter {
                $0.contains("listening") && $0.contains("dns.listen=127.0.0.1:\(port) ") && $0.contains("proto=udp+tcp")
            }
            #expect(lines.count == 1, "expected one line `listening dns.listen=127.0.0.1:\(port) proto=udp+tcp`; logs:\n\(logs)")
        }
        let (ended, exited, status) = try await offload { () -> (Bool, Bool, Int32) in
            Glibc.kill(server.process.processIdentifier, SIGINT)
            guard waitForExit(server.process, timeout: 5) else { return (false, false, -1) }
            return (true, server.process.terminationReason == .exit, server.process.terminationStatus)
        }
        #expect(ended && exited && status == 0,
                "after SIGINT expected exit 0 within 5 s; got ended=\(ended) \(exited ? "exit" : "signal") \(status)\n\(server.logs)")
    }
}
