// Plumbing of the systemd tests: the install tree staged by scripts/install, and the lab
// (scripts/systemd-lab) in which a real systemd runs the unit: a cached Debian 12 tree booted
// with systemd-nspawn on a throwaway overlay, entered with nsenter.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the systemd tests need; each missing piece is one suite trait, so a skip says which.
enum SystemdRequirements {
    static let isRoot: Bool = geteuid() == 0
    static let analyze = Tools.find("systemd-analyze")
    static let unshare = Tools.find("unshare")
    static let nspawn = Tools.find("systemd-nspawn")
    static let nsenter = Tools.find("nsenter")
    static let debootstrap = Tools.find("debootstrap")
    static let bash = Tools.find("bash")
    static let env = Tools.find("env")
    static let treePath = ProcessInfo.processInfo.environment["ZONELINK_LAB_TREE"].flatMap { $0.isEmpty ? nil : $0 }
        ?? "/var/cache/zonelink-test/debian-bookworm"
    /// The tree exists (made by an earlier run), or debootstrap can make it.
    static var treeOrDebootstrap: Bool {
        debootstrap != nil || FileManager.default.fileExists(atPath: treePath + "/.zonelink-lab")
    }
}

/// Prints a line the test log shows whatever the outcome (records, timings, skip reasons).
func announce(_ line: String) {
    FileHandle.standardError.write(Data("[systemd/reload tests] \(line)\n".utf8))
}

/// Cancels (skips) the running test with a reason, printed loudly as well.
func skipLoudly(_ reason: String) throws -> Never {
    announce("SKIPPED: \(reason)")
    try Test.cancel(Comment(rawValue: reason))
}

/// Runs a command with extra environment variables (through env(1)).
func runWithEnvironment(_ environment: [String: String], _ executable: String, _ arguments: [String],
                        cwd: URL? = nil, timeout: Double) throws -> ProcessResult {
    guard let env = SystemdRequirements.env else { throw HarnessError("env(1) not found") }
    let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    return try runProcessBlocking(env, assignments + [executable] + arguments, cwd: cwd, timeout: timeout)
}

/// `DESTDIR=<tmp> ZONELINK_BIN=<binary> bash scripts/install`: the files as they would be installed.
struct StagedInstall {
    let root: URL
    var unit: URL { root.appendingPathComponent("etc/systemd/system/zonelink.service") }

    static func make(binary: URL) throws -> StagedInstall {
        guard let bash = SystemdRequirements.bash else { throw HarnessError("bash not found") }
        let root = try Paths.makeTempDir("staged")
        let r = try runWithEnvironment(["DESTDIR": root.path, "ZONELINK_BIN": binary.path], bash, ["scripts/install"],
                                       cwd: Paths.packageRoot, timeout: 60)
        guard r.exited, r.status == 0 else {
            try? FileManager.default.removeItem(at: root)
            throw HarnessError("DESTDIR=\(root.path) ZONELINK_BIN=\(binary.path) bash scripts/install failed:\n\(r.summary)")
        }
        return StagedInstall(root: root)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

/// One booted container of scripts/systemd-lab.
final class SystemdLab: @unchecked Sendable {
    let name: String
    let initPID: pid_t
    /// The container's root as seen from here (through its init's mount namespace).
    var root: URL { URL(fileURLWithPath: "/proc/\(initPID)/root") }

    private init(name: String, initPID: pid_t) {
        self.name = name
        self.initPID = initPID
    }

    /// `bash scripts/systemd-lab ARGS`, owned by this test process (a later `sweep` stops what a
    /// killed run left behind).
    static func script(_ arguments: [String], timeout: Double) throws -> ProcessResult {
        guard let bash = SystemdRequirements.bash else { throw HarnessError("bash not found") }
        return try runWithEnvironment(["ZONELINK_LAB_OWNER": "\(getpid())", "ZONELINK_LAB_TREE": SystemdRequirements.treePath],
                                      bash, ["scripts/systemd-lab"] + arguments, cwd: Paths.packageRoot, timeout: timeout)
    }

    /// Boots a container; nil and the reason when it cannot.
    static func boot(name: String) throws -> (SystemdLab?, ProcessResult) {
        let r = try script(["boot", name], timeout: 120)
        guard r.exited, r.status == 0,
              let last = r.stdout.split(separator: "\n").last, let pid = pid_t(last.trimmingCharacters(in: .whitespaces))
        else { return (nil, r) }
        return (SystemdLab(name: name, initPID: pid), r)
    }

    /// Runs a command inside (every namespace of the container's init).
    func run(_ arguments: [String], timeout: Double = 30) throws -> ProcessResult {
        guard let nsenter = SystemdRequirements.nsenter else { throw HarnessError("nsenter not found") }
        return try runProcessBlocking(nsenter, ["-t", "\(initPID)", "-a"] + arguments, timeout: timeout)
    }

    /// `systemctl show -p …` as a dictionary.
    func show(_ unit: String, _ properties: [String]) throws -> [String: String] {
        let r = try run(["systemctl", "show", "-p", properties.joined(separator: ","), unit])
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }

    /// The unit's status and recent journal, for failure messages.
    func diagnostics(_ unit: String = "zonelink") -> String {
        let status = (try? run(["systemctl", "status", "--no-pager", "-l", "-n", "0", unit]))?.stdout ?? ""
        let journal = (try? run(["journalctl", "-u", unit, "--no-pager", "-o", "short-monotonic", "-n", "40"]))?.stdout ?? ""
        return "systemctl status \(unit):\n\(cap(status, 2000))\njournalctl -u \(unit):\n\(capTail(journal, 4000))"
    }

    /// Writes a file inside the container (rename into place, mode 0644).
    func write(_ path: String, _ text: String) throws {
        let url = root.appendingPathComponent(String(path.drop { $0 == "/" }))
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).new")
        try text.write(to: temp, atomically: false, encoding: .utf8)
        chmod(temp.path, 0o644)
        guard rename(temp.path, url.path) == 0 else { throw HarnessError("rename to \(url.path): errno \(errno)") }
    }

    func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(String(path.drop { $0 == "/" })), encoding: .utf8)
    }

    /// Powers it off and removes its cgroups (scripts/systemd-lab stop).
    func stop() -> ProcessResult? { try? Self.script(["stop", name], timeout: 60) }
}

/// The IPv4 addresses among the whitespace-separated words of a text.
func ipv4Addresses(in text: String) -> [String] {
    text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init).filter { word in
        let parts = word.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) }
    }.sorted()
}

/// A duration for the test log: `1.23 s`.
func formatSeconds(_ s: Double) -> String {
    "\(Double(Int((s * 100).rounded())) / 100) s"
}
