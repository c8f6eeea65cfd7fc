// Shared plumbing of the integration tests: paths, external tools, processes (free ports and
// the rest shared with other test targets are in ZoneLinkTestSupport).
// Everything here is bounded in time and talks to loopback addresses only.
import Foundation
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

struct HarnessError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

enum Paths {
    /// `<package root>`, three levels above this file (Tests/ZoneLinkIntegrationTests/Support.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The server under test: `<package root>/.build/debug/zonelink` (`swift build` makes it).
    /// `ZONELINK_BINARY` may name another build of it (e.g. one in a second scratch path).
    static var zonelinkBinary: URL {
        if let override = ProcessInfo.processInfo.environment["ZONELINK_BINARY"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        return packageRoot.appendingPathComponent(".build/debug/zonelink")
    }
    static let localYAML = packageRoot.appendingPathComponent("zones/local.yaml")
    static let staticZone = packageRoot.appendingPathComponent("zones/example.internal.zone")

    /// Throws a clear error when the server binary has not been built.
    static func requireZonelink() throws -> URL {
        let url = zonelinkBinary
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw HarnessError("zonelink binary not found at \(url.path): run `swift build` first (.ci/run builds before testing)")
        }
        return url
    }

    /// A fresh temporary directory for one test.
    static func makeTempDir(_ tag: String) throws -> URL {
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("zonelink-it-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        return base
    }
}

enum Tools {
    /// Absolute path of an executable found in PATH or the usual system directories.
    static func find(_ name: String) -> String? {
        var dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        dirs += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for dir in dirs where !dir.isEmpty {
            let path = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
    static let dig = find("dig")
    static let kdig = find("kdig")
    static let drill = find("drill")
    static let nsd = find("nsd")
    static let curl = find("curl")
    static let python3 = find("python3")
}

/// Runs blocking work (processes, sockets) on its own thread, so that tests running in
/// parallel never block the cooperative thread pool. Assertions stay in the async caller.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
        let thread = Thread {
            cont.resume(with: Result { try body() })
        }
        thread.stackSize = 4 << 20
        thread.start()
    }
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func sleepSeconds(_ s: Double) {
    usleep(useconds_t(max(0, s) * 1_000_000))
}

// MARK: - Processes

struct ProcessResult: Sendable {
    var status: Int32
    var exited: Bool          // false: killed by a signal or timed out
    var timedOut: Bool
    var stdout: String
    var stderr: String
    var commandLine: String

    var summary: String {
        "`\(commandLine)` -> \(timedOut ? "TIMED OUT" : (exited ? "exit \(status)" : "signal \(status)"))\n"
            + "stdout:\n\(cap(stdout, 3000))\nstderr:\n\(cap(stderr, 3000))"
    }
}

func cap(_ s: String, _ n: Int) -> String {
    s.count <= n ? s : String(s.prefix(n)) + "\n…(\(s.count - n) more characters)"
}

/// Waits (polling) for a launched process to end; true if it ended before the deadline.
func waitForExit(_ p: Process, timeout: Double) -> Bool {
    let deadline = monotonicNow() + timeout
    while p.isRunning {
        if monotonicNow() > deadline { return false }
        usleep(5_000)
    }
    return true
}

/// Runs a command to completion (bounded by `timeout`), capturing stdout and stderr in files.
func runProcessBlocking(_ executable: String, _ arguments: [String], cwd: URL? = nil,
                        timeout: Double = 30) throws -> ProcessResult {
    let dir = try Paths.makeTempDir("proc")
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("stdout")
    let errURL = dir.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    defer { try? out.close(); try? err.close() }

    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = cwd }
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = out
    p.standardError = err
    try launchProcess(p)
    var timedOut = false
    if !waitForExit(p, timeout: timeout) {
        timedOut = true
        p.terminate()
        if !waitForExit(p, timeout: 2) {
            kill(p.processIdentifier, SIGKILL)
            _ = waitForExit(p, timeout: 5)
        }
    }
    let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    let exited = !p.isRunning && p.terminationReason == .exit
    return ProcessResult(status: p.isRunning ? -1 : p.terminationStatus, exited: exited, timedOut: timedOut,
                         stdout: stdout, stderr: stderr,
                         commandLine: ([executable] + arguments).joined(separator: " "))
}

func runProcess(_ executable: String, _ arguments: [String], cwd: URL? = nil,
                timeout: Double = 30) async throws -> ProcessResult {
    try await offload { try runProcessBlocking(executable, arguments, cwd: cwd, timeout: timeout) }
}

// MARK: - Addresses

extension sockaddr_in {
    init(port: UInt16, host: String) {
        self.init()
        sin_family = sa_family_t(AF_INET)
        sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sin_addr)
    }
}

/// Calls `body` with `address` (a `sockaddr_in`, `sockaddr_un`, …) as a `sockaddr` and its
/// length: for bind and connect.
func withSocketAddress<Address>(_ address: Address, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var address = address
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<Address>.size)) }
    }
}

/// A TCP socket listening on `address:port` (SO_REUSEADDR), for backend stand-ins.
func listeningSocket(_ address: String, _ port: UInt16, backlog: Int32) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("backend stand-in: socket: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    guard withSocketAddress(sockaddr_in(port: port, host: address), { bind(fd, $0, $1) }) == 0, listen(fd, backlog) == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw HarnessError("backend stand-in: cannot listen on \(address):\(port): \(reason)")
    }
    return fd
}

/// One listening socket per address on `port`; none left open when one fails.
func listeningSockets(_ addresses: [String], _ port: UInt16, backlog: Int32) throws -> [Int32] {
    var sockets: [Int32] = []
    for address in addresses {
        do {
            sockets.append(try listeningSocket(address, port, backlog: backlog))
        } catch {
            sockets.forEach { close($0) }
            throw error
        }
    }
    return sockets
}
