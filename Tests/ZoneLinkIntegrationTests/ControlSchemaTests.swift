// Issue 4: schemathesis (PyPI; scripts/deps installs it) fuzzes the control API of a running
// server from docs/openapi.yaml with an operator token: no 5xx, every response as documented.
import Foundation
import Testing

enum Schemathesis {
    /// python3 that can import schemathesis (checked once), or nil.
    static let python: String? = {
        guard let python = Tools.python3,
              let r = try? runProcessBlocking(python, ["-c", "import schemathesis"], timeout: 60),
              r.exited, r.status == 0 else { return nil }
        return python
    }()

    /// Examples per operation and phase: about 10 s for the whole run alone on 2 cores.
    static let maxExamples = 50
    /// schemathesis and its server run at this niceness, so that the timing-sensitive tests
    /// running beside them (dnsperf, reloads) keep the CPU they need.
    static let niceness = 10
}

@Suite("Control API against its OpenAPI document (issue 4)")
struct ControlSchemaTests {
    @Test("schemathesis: no 5xx, every response matches docs/openapi.yaml",
          .enabled(if: Schemathesis.python != nil,
                   "schemathesis cannot be imported by python3: run scripts/deps (python3 -m pip install 'schemathesis>=4,<5')"),
          .timeLimit(.minutes(10)))
    func schemathesisFindsNothing() async throws {
        let python = try #require(Schemathesis.python)
        let server = try ControlAPIServer(tag: "ctl-schema", niceness: Schemathesis.niceness)
        defer { server.cleanUp() }
        try await offload { try server.start() }
        let schema = Paths.packageRoot.appendingPathComponent("docs/openapi.yaml").path
        // Its own working directory: schemathesis may leave caches (.hypothesis) behind.
        let cwd = server.dir.appendingPathComponent("schemathesis")
        try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
        let started = monotonicNow()
        let r = try await runProcess("/usr/bin/nice", ["-n", String(Schemathesis.niceness), python,
            "-m", "schemathesis.cli", "run", schema,
            "--url", "http://127.0.0.1:\(server.controlPort)",
            "-H", "Authorization: Bearer \(server.token)",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--max-examples", String(Schemathesis.maxExamples),
            "--generation-database", "none",
            "--request-timeout", "10",
            "--no-color",
        ], cwd: cwd, timeout: 540)  // about 10 s alone; a generous bound for a machine whose cores are busy
        let elapsed = monotonicNow() - started
        print("schemathesis: \(r.timedOut ? "timed out" : "exit \(r.status)") in \(String(format: "%.1f", elapsed)) s; "
              + (r.stdout.split(separator: "\n").last(where: { $0.contains("generated") }).map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""))
        #expect(!r.timedOut && r.exited && r.status == 0,
                "schemathesis found failures (or did not finish):\n\(cap(r.stdout, 12_000))\nstderr:\n\(cap(r.stderr, 3000))\n\(server.logs)")
        #expect(server.process?.isRunning == true, "zonelink serve died under schemathesis.\n\(server.logs)")
        let stopped = try await offload { server.stop() }
        #expect(stopped, "zonelink serve did not exit 0 on SIGTERM after schemathesis.\n\(server.logs)")
    }
}
