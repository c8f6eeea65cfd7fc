// Issue 5: ZoneLink under a real systemd. A minimal Debian 12 (debootstrap, cached in
// /var/cache/zonelink-test/debian-bookworm, made once per machine) booted with systemd-nspawn
// by scripts/systemd-lab; scripts/install puts the binary, the unit, the resolved drop-in and
// the config into it; then, inside: systemctl start (Type=notify: READY, STATUS), resolvectl
// through the drop-in, systemctl reload with a changed config while a client loops queries,
// a reload with broken configs (refused, old one kept), systemctl stop (clean exit).
// Skipped, with the reason, when it cannot run here (not root, no nspawn, no tree and no
// network to make one, a container that does not boot).
import Foundation
import ZoneLinkTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("ZoneLink under systemd (nspawn)", .serialized, .timeLimit(.minutes(10)),
       .enabled(if: SystemdRequirements.isRoot, "needs root (debootstrap, systemd-nspawn, nsenter)"),
       .enabled(if: SystemdRequirements.nspawn != nil, "needs systemd-nspawn (bash scripts/deps: systemd-container)"),
       .enabled(if: SystemdRequirements.nsenter != nil, "needs nsenter (util-linux)"),
       .enabled(if: SystemdRequirements.bash != nil, "needs bash (scripts/systemd-lab)"),
       .enabled(if: SystemdRequirements.treeOrDebootstrap,
                "needs debootstrap (bash scripts/deps) or a cached tree in \(SystemdRequirements.treePath)"))
struct SystemdServiceTests {
    static let name = "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal"
    static let config = "/etc/zonelink/zonelink.yaml"

    @Test("systemctl start, resolvectl through the drop-in, reload (changed, then broken configs), stop")
    func serviceLifecycle() async throws {
        let binary = try Paths.requireZonelink()
        let t0 = monotonicNow()
        _ = try await offload { try SystemdLab.script(["sweep"], timeout: 120) }

        // The tree: made once (debootstrap), then reused.
        let tree = try await offload { try SystemdLab.script(["tree"], timeout: 900) }
        guard tree.exited, tree.status == 0 else {
            try skipLoudly("no Debian tree for the container: `scripts/systemd-lab tree` failed (debootstrap needs the Debian mirror apt uses):\n\(tree.summary)")
        }
        let tTree = monotonicNow()
        announce("nspawn: tree \(SystemdRequirements.treePath) ready in \(formatSeconds(tTree - t0))")

        let labName = "it-\(getpid() % 1_000_000)"
        let (booted, bootResult) = try await offload { try SystemdLab.boot(name: labName) }
        guard let lab = booted else {
            _ = try? await offload { try SystemdLab.script(["stop", labName], timeout: 60) }
            try skipLoudly("systemd-nspawn could not boot the container here: `scripts/systemd-lab boot \(labName)`:\n\(bootResult.summary)")
        }
        let tBoot = monotonicNow()
        announce("nspawn: container \(labName) (init PID \(lab.initPID)) booted in \(formatSeconds(tBoot - tTree))")
        do {
            try await exercise(lab, binary: binary)
        } catch {
            announce("nspawn: failed; diagnostics:\n\(lab.diagnostics())")
            _ = try? await offload { lab.stop() }
            throw error
        }
        let stopped = try await offload { lab.stop() }
        #expect(stopped?.exited == true && stopped?.status == 0, "scripts/systemd-lab stop \(labName): \(stopped?.summary ?? "did not run")")
        announce("nspawn: the test took \(formatSeconds(monotonicNow() - t0)) (\(formatSeconds(monotonicNow() - tTree)) once the tree was there)")
    }

    private func exercise(_ lab: SystemdLab, binary: URL) async throws {
        // Install: binary, unit, resolved drop-in, config; daemon-reload; resolved reads the drop-in.
        let install = try await offload { try SystemdLab.script(["install", lab.name, binary.path], timeout: 120) }
        try #require(install.exited && install.status == 0, "scripts/systemd-lab install \(lab.name): \(install.summary)")
        let resolved = try await offload { try lab.run(["resolvectl", "status", "--no-pager"]) }
        #expect(resolved.stdout.contains("127.0.0.1:5353") && resolved.stdout.contains("~privatelink.internal"),
                "resolvectl status: expected the drop-in's DNS=127.0.0.1:5353 and Domains=~privatelink.internal.\n\(resolved.summary)")

        // Start: Type=notify, so `systemctl start` returns once READY=1 came.
        let tStart = monotonicNow()
        let start = try await offload { try lab.run(["systemctl", "start", "zonelink"], timeout: 60) }
        announce("nspawn: systemctl start zonelink took \(formatSeconds(monotonicNow() - tStart))")
        try #require(start.exited && start.status == 0, "systemctl start zonelink failed.\n\(start.summary)\n\(lab.diagnostics())")
        let started = try await offload { try lab.show("zonelink", ["ActiveState", "SubState", "StatusText", "MainPID", "NRestarts"]) }
        #expect(started["ActiveState"] == "active" && started["SubState"] == "running",
                "after start: expected active/running, got \(started)\n\(lab.diagnostics())")
        #expect(started["StatusText"]?.hasPrefix("serving 1 endpoints (1 connected), 2 VPCs, config serial 1") == true,
                "after start: StatusText (sd_notify STATUS=) is \(started["StatusText"] ?? "unset")")
        let mainPID = started["MainPID"] ?? "?"

        // The host's resolver path: resolved sends *.privatelink.internal to ZoneLink.
        let first = try await offload { try self.resolve(lab) }
        #expect(first.addresses == ["127.10.2.50"], "resolvectl query \(Self.name): expected 127.10.2.50.\n\(first.result.summary)")
        let stub = try await offload { try lab.run(["dig", "+short", "+time=3", "+tries=1", Self.name]) }
        #expect(ipv4Addresses(in: stub.stdout) == ["127.10.2.50"],
                "dig through resolv.conf (resolved's stub 127.0.0.53): expected 127.10.2.50.\n\(stub.summary)")

        // Reload with the ENI moved to 127.10.2.60, while a client loops queries (dig straight to
        // ZoneLink with one try, and resolvectl through resolved).
        let original = try lab.read(Self.config)
        let changed = original.replacingOccurrences(of: "address: 127.10.2.50}", with: "address: 127.10.2.60}")
        try #require(changed != original, "\(Self.config) as installed no longer holds `address: 127.10.2.50}`")
        let loop = try startQueryLoop(lab)
        defer { loop.stop() }
        try await offload { try loop.waitForLines(20, timeout: 20) }
        try lab.write(Self.config, changed)
        let tReload = monotonicNow()
        let reload = try await offload { try lab.run(["systemctl", "reload", "zonelink"], timeout: 60) }
        announce("nspawn: systemctl reload zonelink (changed config) took \(formatSeconds(monotonicNow() - tReload)), exit \(reload.status)")
        if !(reload.exited && reload.status == 0) {
            let why = lab.diagnostics()
            Issue.record("""
                systemctl reload zonelink failed, so ExecReload= did not deliver SIGHUP; \
                continuing with `systemctl kill -s HUP` to test the reload itself.
                \(reload.summary)
                \(why)
                \(why.contains("/bin/kill") ? "Hint: ExecReload=/bin/kill needs procps, which a minimal Debian does not have." : "")
                """)
            let hup = try await offload { try lab.run(["systemctl", "kill", "--kill-who=main", "--signal=HUP", "zonelink"]) }
            try #require(hup.exited && hup.status == 0, "systemctl kill -s HUP zonelink: \(hup.summary)")
        }
        let moved = try await offload { try self.waitForAnswer(lab, ["127.10.2.60"], timeout: 5) }
        #expect(moved.addresses == ["127.10.2.60"], "after the reload: resolvectl query \(Self.name) expected 127.10.2.60.\n\(moved.result.summary)\n\(lab.diagnostics())")
        let reloaded = try await offload { try lab.show("zonelink", ["ActiveState", "StatusText", "MainPID", "NRestarts"]) }
        #expect(reloaded["StatusText"]?.hasSuffix("config serial 2") == true && reloaded["ActiveState"] == "active",
                "after the reload: expected active with StatusText ending `config serial 2`, got \(reloaded)")
        #expect(reloaded["MainPID"] == mainPID && reloaded["NRestarts"] == "0",
                "the reload restarted the service: MainPID \(mainPID) → \(reloaded["MainPID"] ?? "?"), NRestarts \(reloaded["NRestarts"] ?? "?")")
        try await offload { try loop.waitForLines(loop.lineCount() + 20, timeout: 20) }
        let lines = try await offload { try loop.finish() }
        let failed = lines.filter { !$0.ok }
        let digs = lines.filter { $0.tool == "dig" }, viaResolved = lines.filter { $0.tool == "resolved" }
        announce("nspawn: query loop across the reload: \(digs.count) dig + \(viaResolved.count) resolvectl queries, \(failed.count) failed; answers seen: \(Set(lines.map(\.answer)).sorted())")
        #expect(failed.isEmpty, "\(failed.count) queries failed around the reload, e.g.:\n\(failed.prefix(10).map(\.line).joined(separator: "\n"))")
        #expect(lines.contains { $0.answer == "127.10.2.50" } && lines.contains { $0.answer == "127.10.2.60" },
                "the loop should have seen the old answer, then the new one: \(Set(lines.map(\.answer)).sorted())")
        if let firstNew = lines.firstIndex(where: { $0.answer == "127.10.2.60" }) {
            let backward = lines[firstNew...].filter { $0.tool == "dig" && $0.answer == "127.10.2.50" }
            #expect(backward.isEmpty, "after the first new answer ZoneLink answered the old address again \(backward.count) times")
        }

        // Broken configs on reload: refused, the old config keeps serving, the journal says why.
        let broken: [(String, String)] = [
            ("ENI outside its vSwitch", changed.replacingOccurrences(of: "address: 127.10.2.60}", with: "address: 127.99.2.60}")),
            ("not YAML", changed + "\nvpcs: [\n"),
        ]
        for (what, text) in broken {
            let cursor = try await offload { try lab.run(["journalctl", "-u", "zonelink", "--show-cursor", "-n", "1", "--no-pager"]) }
            let after = cursor.stdout.split(separator: "\n").last.map { $0.replacingOccurrences(of: "-- cursor: ", with: "") } ?? ""
            try lab.write(Self.config, text)
            let r = try await offload { try lab.run(["systemctl", "reload", "zonelink"], timeout: 60) }
            if !(r.exited && r.status == 0) {
                _ = try await offload { try lab.run(["systemctl", "kill", "--kill-who=main", "--signal=HUP", "zonelink"]) }
            }
            let refusal = try await offload { try self.waitForJournal(lab, after: after, containing: "reload refused", timeout: 30) }
            #expect(refusal != nil, "broken config (\(what)): no `reload refused` in the journal within 30 s.\n\(lab.diagnostics())")
            if let refusal { announce("nspawn: broken config (\(what)) refused: \(refusal)") }
            let still = try await offload { try self.resolve(lab) }
            #expect(still.addresses == ["127.10.2.60"], "broken config (\(what)): expected the old answer 127.10.2.60.\n\(still.result.summary)")
            let state = try await offload { try lab.show("zonelink", ["ActiveState", "StatusText", "MainPID", "NRestarts"]) }
            #expect(state["ActiveState"] == "active" && state["MainPID"] == mainPID && state["NRestarts"] == "0"
                    && state["StatusText"]?.hasSuffix("config serial 2") == true,
                    "broken config (\(what)): expected the same process still active with config serial 2, got \(state)")
            let status = try await offload { try lab.run(["systemctl", "status", "--no-pager", "-l", "zonelink"]) }
            #expect(status.stdout.contains("reload refused"), "broken config (\(what)): `systemctl status zonelink` does not show the refusal:\n\(status.stdout)")
        }

        // Stop: SIGTERM, STOPPING=1, exit 0.
        let tStop = monotonicNow()
        let stop = try await offload { try lab.run(["systemctl", "stop", "zonelink"], timeout: 60) }
        announce("nspawn: systemctl stop zonelink took \(formatSeconds(monotonicNow() - tStop))")
        #expect(stop.exited && stop.status == 0, "systemctl stop zonelink: \(stop.summary)")
        let end = try await offload { try lab.show("zonelink", ["ActiveState", "Result", "ExecMainStatus", "NRestarts"]) }
        #expect(end["ActiveState"] == "inactive" && end["Result"] == "success" && end["ExecMainStatus"] == "0",
                "after stop: expected inactive, Result=success, ExecMainStatus=0; got \(end)\n\(lab.diagnostics())")
    }

    /// `resolvectl query` without resolved's cache.
    private func resolve(_ lab: SystemdLab) throws -> (addresses: [String], result: ProcessResult) {
        let r = try lab.run(["resolvectl", "query", "--cache=no", "--legend=no", "-4", Self.name], timeout: 20)
        return (r.exited && r.status == 0 ? ipv4Addresses(in: r.stdout) : [], r)
    }

    private func waitForAnswer(_ lab: SystemdLab, _ want: [String], timeout: Double) throws -> (addresses: [String], result: ProcessResult) {
        let deadline = monotonicNow() + timeout
        var last = try resolve(lab)
        while last.addresses != want && monotonicNow() < deadline {
            sleepSeconds(0.1)
            last = try resolve(lab)
        }
        return last
    }

    /// The first journal line of the unit after `cursor` that contains `text`.
    private func waitForJournal(_ lab: SystemdLab, after cursor: String, containing text: String, timeout: Double) throws -> String? {
        let deadline = monotonicNow() + timeout
        repeat {
            let r = try lab.run(["journalctl", "-u", "zonelink", "--no-pager", "-o", "cat"] + (cursor.isEmpty ? [] : ["--after-cursor", cursor]))
            if let line = r.stdout.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            sleepSeconds(0.1)
        } while monotonicNow() < deadline
        return nil
    }

    private func startQueryLoop(_ lab: SystemdLab) throws -> QueryLoop {
        try QueryLoop(lab: lab, name: Self.name)
    }
}

/// A client inside the container asking in a loop until told to stop: `dig` straight to ZoneLink
/// (one try, 2 s) and `resolvectl query` through resolved, one line per query.
final class QueryLoop: @unchecked Sendable {
    struct Line {
        var tool: String
        var ok: Bool
        var answer: String
        var line: String
    }

    private let lab: SystemdLab
    private let process = Process()
    private let output: URL
    private let dir: URL
    private let stopFile = "/run/zonelink-query-loop.stop"

    init(lab: SystemdLab, name: String) throws {
        self.lab = lab
        dir = try Paths.makeTempDir("query-loop")
        output = dir.appendingPathComponent("loop.out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let script = """
            rm -f \(stopFile); i=0
            while [ ! -e \(stopFile) ] && [ $i -lt 5000 ]; do
                i=$((i + 1))
                a=$(dig +short +tries=1 +time=2 @127.0.0.1 -p 5353 \(name) A 2>&1); rc=$?
                echo "dig $rc $(echo $a)"
                a=$(resolvectl query --cache=no --legend=no -4 \(name) 2>&1); rc=$?
                echo "resolved $rc $(echo $a)"
            done
            """
        try lab.write("/run/zonelink-query-loop.sh", script)
        guard let nsenter = SystemdRequirements.nsenter else { throw HarnessError("nsenter not found") }
        process.executableURL = URL(fileURLWithPath: nsenter)
        process.arguments = ["-t", "\(lab.initPID)", "-a", "/bin/sh", "/run/zonelink-query-loop.sh"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: output)
        try launchProcess(process)
    }

    func lineCount() -> Int {
        ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    func waitForLines(_ n: Int, timeout: Double) throws {
        let deadline = monotonicNow() + timeout
        while lineCount() < n {
            guard process.isRunning else { throw HarnessError("the query loop ended early:\n\(cap((try? String(contentsOf: output, encoding: .utf8)) ?? "", 2000))") }
            guard monotonicNow() < deadline else { throw HarnessError("the query loop wrote fewer than \(n) lines in \(Int(timeout)) s") }
            sleepSeconds(0.05)
        }
    }

    /// Stops the loop and parses what it printed.
    func finish() throws -> [Line] {
        stop()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: dir)
        return text.split(separator: "\n").map { raw in
            let fields = raw.split(separator: " ", maxSplits: 2).map(String.init)
            let tool = fields.first ?? "?"
            let rc = fields.count > 1 ? fields[1] : "?"
            let rest = fields.count > 2 ? fields[2] : ""
            let addresses = ipv4Addresses(in: rest)
            let ok = rc == "0" && addresses.count == 1
            return Line(tool: tool, ok: ok, answer: addresses.joined(separator: ","), line: String(raw))
        }
    }

    func stop() {
        guard process.isRunning else { return }
        _ = try? lab.write(stopFile, "")
        if !waitForExit(process, timeout: 10) {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(process, timeout: 5)
        }
    }
}
