// Plumbing that several test targets share: a deterministic generator, free loopback ports,
// child processes with a clean signal mask, and NSD as a reference server. A library target of
// its own (in Tests/, used only by test targets) so that each piece exists once.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Deterministic PRNG (SplitMix64), so generated queries, fuzz corpora and "random" histories
/// are the same on every run.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Ports on 127.0.0.1 free for both UDP and TCP, handed out in turn from one counter for the
/// whole test process (so two tests never get the same one), below the ephemeral range.
public enum LoopbackPorts {
    private static let next = Mutex<UInt16>(15_000 + UInt16(getpid() % 2_000) * 8)

    public static func free() throws -> UInt16 {
        for _ in 0..<2_000 {
            let port = next.withLock { next in
                defer { next = next >= 32_000 ? 15_000 : next + 1 }
                return next
            }
            if canBind(port, Int32(SOCK_DGRAM.rawValue)) && canBind(port, Int32(SOCK_STREAM.rawValue)) { return port }
        }
        throw TestSupportError("no free loopback port found")
    }

    private static func canBind(_ port: UInt16, _ type: Int32) -> Bool {
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// Starts a process with an empty signal mask, as a shell would. Threads of the Swift runtime
/// block most signals (SIGTERM among them) and a spawned child inherits the spawning thread's
/// mask, so without this a server under test would never see the SIGTERM it is sent.
public func launchProcess(_ p: Process) throws {
    var empty = sigset_t(), old = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &old)
    defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
    try p.run()
}

/// Live descendants of a process, from /proc (parents first).
public func descendants(of root: pid_t) -> [pid_t] {
    var parent: [pid_t: pid_t] = [:]
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in entries {
        guard let pid = pid_t(entry),
              let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, let ppid = pid_t(fields[1]) { parent[pid] = ppid }
    }
    var out: [pid_t] = []
    var frontier = [root]
    while let next = frontier.popLast(), out.count < 1000 {
        let children = parent.filter { $0.value == next }.map(\.key)
        out += children
        frontier += children
    }
    return out
}

/// Checks `condition` every `interval` until it holds or `seconds` pass; whether it held. Tests
/// wait for a condition, never for a guessed time: on a machine whose cores are busy, what
/// takes a millisecond when quiet may take seconds, so the deadline only bounds a hang.
public func waitUntil(
    within seconds: Double = 30, every interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// True while the process exists and is not a zombie.
public func isAlive(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].split(separator: " ").first
    return state != "Z" && state != "X"
}

/// NSD, the reference server, serving zone files on a loopback port in the foreground (`-d`),
/// its files in a directory of the caller's. Callers probe it until it answers.
public enum NSD {
    public static let path = ["/usr/sbin/nsd", "/usr/local/sbin/nsd"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Writes `nsd.conf` for `zones` (origin, absolute zone file path) into `directory` and
    /// starts NSD on 127.0.0.1:`port`; its output goes to `directory/nsd.stderr`.
    public static func launch(zones: [(origin: String, file: String)], port: UInt16, in directory: URL) throws -> Process {
        guard let path else { throw TestSupportError("nsd is not installed (apt-get install nsd)") }
        var conf = """
            server:
                server-count: 1
                ip-address: 127.0.0.1@\(port)
                do-ip6: no
                minimal-responses: yes
                database: ""
                zonelistfile: "\(directory.path)/zone.list"
                xfrdfile: "\(directory.path)/xfrd.state"
                pidfile: "\(directory.path)/nsd.pid"
                logfile: "\(directory.path)/nsd.log"
                zonesdir: "\(directory.path)"
                username: ""
                chroot: ""
                verbosity: 1
                rrl-ratelimit: 0
                rrl-whitelist-ratelimit: 0
            remote-control:
                control-enable: no

            """
        for (origin, file) in zones {
            conf += "zone:\n    name: \"\(origin)\"\n    zonefile: \"\(file)\"\n"
        }
        let confURL = directory.appendingPathComponent("nsd.conf")
        try conf.write(to: confURL, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("nsd.stderr")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-d", "-c", confURL.path]
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: output)
        try launchProcess(process)
        return process
    }

    /// What NSD wrote: its stderr and its log file.
    public static func logs(in directory: URL) -> String {
        ["nsd.stderr", "nsd.log"].map { (try? String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8)) ?? "" }.joined()
    }

    /// SIGTERM by pid to NSD and its children (NSD forks: xfrd, main, server), SIGKILL to what is
    /// left after 5 s, then waits for it.
    public static func stop(_ process: Process) {
        let pids = [process.processIdentifier] + descendants(of: process.processIdentifier)
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && pids.contains(where: isAlive) { usleep(10_000) }
        for pid in pids where isAlive(pid) { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}
