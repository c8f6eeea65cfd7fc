// Issue 5: the unit file as systemd reads it. `systemd-analyze verify` on the unit that
// scripts/install stages, and `systemd-analyze security` (its exposure score is printed, with
// no threshold).
//
// verify resolves ExecStart= on the machine it runs on. `--root=<staged tree>` does find the
// staged binary, but systemd 252 then also looks for sysinit.target and /bin/kill in that tree
// and complains that they are missing. So verify runs on the staged unit file in a private mount
// namespace (unshare) in which the staged usr/local/bin is bind-mounted over /usr/local/bin:
// the binary resolves where the unit says, everything else is this machine's systemd.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("systemd unit file", .timeLimit(.minutes(2)),
       .enabled(if: SystemdRequirements.analyze != nil, "needs systemd-analyze (Debian package systemd)"),
       .enabled(if: SystemdRequirements.bash != nil, "needs bash (scripts/install)"))
struct SystemdUnitTests {
    @Test("systemd-analyze verify: the staged zonelink.service draws no complaint",
          .enabled(if: SystemdRequirements.isRoot, "needs root: a private mount namespace (unshare --mount) to bind the staged binary at /usr/local/bin"),
          .enabled(if: SystemdRequirements.unshare != nil, "needs unshare (util-linux)"))
    func verify() async throws {
        let binary = try Paths.requireZonelink()
        let staged = try await offload { try StagedInstall.make(binary: binary) }
        defer { staged.remove() }
        guard let analyze = SystemdRequirements.analyze, let unshare = SystemdRequirements.unshare else { return }
        let bin = staged.root.appendingPathComponent("usr/local/bin")
        let r = try await runProcess(unshare, [
            "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            "mount --bind \"$0\" /usr/local/bin && exec \"$1\" verify \"$2\"", bin.path, analyze, staged.unit.path,
        ], timeout: 60)
        announce("systemd-analyze verify \(staged.unit.path) (staged usr/local/bin bound at /usr/local/bin): exit \(r.status), stderr \(r.stderr.isEmpty ? "empty" : "not empty")")
        #expect(r.exited && r.status == 0, "systemd-analyze verify: expected exit 0.\n\(r.summary)")
        #expect(r.stderr.isEmpty, "systemd-analyze verify wrote to stderr (every line is a complaint about the unit):\n\(r.stderr)")
    }

    @Test("systemd-analyze security --offline=yes: the exposure score (recorded, no threshold)")
    func security() async throws {
        let binary = try Paths.requireZonelink()
        let staged = try await offload { try StagedInstall.make(binary: binary) }
        defer { staged.remove() }
        guard let analyze = SystemdRequirements.analyze else { return }
        let r = try await runProcess(analyze, ["security", "--offline=yes", "--no-pager", staged.unit.path], timeout: 60)
        #expect(r.exited && r.status == 0, "systemd-analyze security --offline=yes: expected exit 0.\n\(r.summary)")
        // → Overall exposure level for zonelink.service: 2.4 OK 🙂
        let line = r.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }
        let score = line.flatMap { $0.split(separator: ":").last }.map { $0.trimmingCharacters(in: .whitespaces) }
        let open = r.stdout.split(separator: "\n").filter { $0.hasPrefix("✗") }
            .map { "  " + $0.replacingOccurrences(of: "  +", with: "  ", options: .regularExpression) }
        announce("systemd-analyze security --offline=yes zonelink.service: exposure \(score ?? "?")")
        announce("settings it counts against the unit (\(open.count)):\n" + open.joined(separator: "\n"))
        #expect(score != nil, "no 'Overall exposure level' line in systemd-analyze security's output:\n\(r.summary)")
    }
}
