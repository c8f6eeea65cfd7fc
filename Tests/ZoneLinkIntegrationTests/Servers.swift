// The servers the tests run: `zonelink serve` on its own config and ports, and NSD.
import Foundation
import ZoneLinkTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Test configs: zones/local.yaml with the two DNS listener ports, the ENI port and the backend
/// port moved to free ones and the static zone path made absolute.
struct TestConfig: Sendable {
    /// `dns.listen[0]`: VPC 1, pinned to zone eu-central-1b.
    var pinnedPort: UInt16
    /// `dns.listen[1]`: VPC 1, zone of the source address.
    var sourcePort: UInt16
    /// The port of ECS 2 and ECS 3 (`backendPort`), where `ZoneLinkServer` runs `BackendListeners`.
    var backendPort: UInt16
    /// The ENI listeners' port (`port: 8080` of zones/local.yaml).
    var eniPort: UInt16
    var yaml: String

    /// ECS 2 and ECS 3 of zones/local.yaml.
    static let backendAddresses = ["127.168.24.200", "127.168.24.12"]

    static func local(mutate: (String) -> String = { $0 }) throws -> TestConfig {
        var text = try String(contentsOf: Paths.localYAML, encoding: .utf8)
        let pinned = try LoopbackPorts.free(), source = try LoopbackPorts.free(), eni = try LoopbackPorts.free(), backend = try LoopbackPorts.free()
        // The ENI and backend ports too: servers of tests running side by side must not share a
        // listener. (`backendPort` goes first: `port: 8080` is a suffix of it.)
        for (old, new) in [("127.0.0.1:5353", "127.0.0.1:\(pinned)"), ("127.0.0.1:5354", "127.0.0.1:\(source)"),
                           ("zones/example.internal.zone", Paths.staticZone.path),
                           ("backendPort: 8080", "backendPort: \(backend)"), ("port: 8080", "port: \(eni)"),
                           ("ports: \"8080\"", "ports: \"\(eni)\"")] {
            guard text.contains(old) else { throw HarnessError("zones/local.yaml no longer contains `\(old)`") }
            text = text.replacingOccurrences(of: old, with: new)
        }
        return TestConfig(pinnedPort: pinned, sourcePort: source, backendPort: backend, eniPort: eni, yaml: mutate(text))
    }
}

/// ECS 2 and ECS 3 for the tests that run `zonelink serve` on loopback without a lab: TCP
/// listeners that accept and close, so the gateway's health checks pass. Without them the
/// backends turn unhealthy after `unhealthyThreshold` probes, and DNS rightly stops answering
/// with zone affinity (every ENI is unhealthy) halfway through a test.
final class BackendListeners: Sendable {
    private let sockets: [Int32]
    private let stopped = DispatchGroup()
    private let isStopped = Mutex(false)

    init(addresses: [String], port: UInt16) throws {
        let sockets = try listeningSockets(addresses, port, backlog: 64)
        self.sockets = sockets
        for fd in sockets {
            stopped.enter()
            Thread.detachNewThread { [stopped] in
                // Runs until `stop()` shuts the socket down, which fails the blocked accept.
                while true {
                    let connection = accept(fd, nil, nil)
                    if connection >= 0 { close(connection); continue }
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                stopped.leave()
            }
        }
    }

    /// Stops accepting, waits for the threads, then closes (so no thread accepts on a reused fd).
    func stop() {
        let wasStopped = isStopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        guard !wasStopped else { return }
        sockets.forEach { shutdown($0, Int32(SHUT_RDWR)) }
        _ = stopped.wait(timeout: .now() + 5)
        sockets.forEach { close($0) }
    }
}

/// A running `zonelink serve`.
final class ZoneLinkServer: @unchecked Sendable {
    let process: Process
    let backends: BackendListeners
    let dir: URL
    let configURL: URL
    let config: TestConfig
    let stderrURL: URL
    let stdoutURL: URL

    var pinnedPort: UInt16 { config.pinnedPort }
    var sourcePort: UInt16 { config.sourcePort }
    var isRunning: Bool { process.isRunning }

    private init(process: Process, backends: BackendListeners, dir: URL, configURL: URL, config: TestConfig,
                 stderrURL: URL, stdoutURL: URL) {
        self.process = process
        self.backends = backends
        self.dir = dir
        self.configURL = configURL
        self.config = config
        self.stderrURL = stderrURL
        self.stdoutURL = stdoutURL
    }

    var logs: String {
        let err = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        let out = (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? ""
        return "stderr:\n\(cap(err, 4000))\nstdout:\n\(cap(out, 2000))"
    }

    /// Launches `zonelink serve --config F --threads 1` in a temp dir (its current directory).
    /// With `tokens`, the control API's tokens file (`ACCOUNT-ID sha256(token)` lines) is written
    /// to `<state-dir>/tokens` first, so that the CLI can change the catalog.
    static func launch(_ config: TestConfig, tag: String, tokens: String? = nil) throws -> ZoneLinkServer {
        let binary = try Paths.requireZonelink()
        let dir = try Paths.makeTempDir(tag)
        let configURL = dir.appendingPathComponent("zonelink.yaml")
        try config.yaml.write(to: configURL, atomically: true, encoding: .utf8)
        let errURL = dir.appendingPathComponent("server.stderr")
        let outURL = dir.appendingPathComponent("server.stdout")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        if let tokens {
            let stateDir = dir.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
            try tokens.write(to: stateDir.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = ["serve", "--config", configURL.path, "--threads", "1", "--state-dir", dir.appendingPathComponent("state").path]
        p.currentDirectoryURL = dir
        p.standardInput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        let backends = try BackendListeners(addresses: TestConfig.backendAddresses, port: config.backendPort)
        do { try launchProcess(p) } catch { backends.stop(); throw error }
        return ZoneLinkServer(process: p, backends: backends, dir: dir, configURL: configURL, config: config,
                              stderrURL: errURL, stdoutURL: outURL)
    }

    /// Waits (at most `timeout` s) until both listeners answer a UDP query and accept TCP.
    func waitUntilReady(timeout: Double = 20) throws {
        let deadline = monotonicNow() + timeout
        let client = try UDPClient()
        var ready: Set<UInt16> = []
        var id: UInt16 = 1
        while monotonicNow() < deadline {
            guard process.isRunning else {
                throw HarnessError("zonelink serve exited early (status \(process.terminationStatus)) before answering.\n\(logs)")
            }
            for port in [pinnedPort, sourcePort] where !ready.contains(port) {
                id &+= 1
                let q = DNSQuery.build(id: id, name: "privatelink.internal", type: RRType.SOA)
                if let reply = client.query(q, port: port, timeout: 0.2), reply.count >= 12, reply[2] & 0x80 != 0,
                   (try? TCPClient(port: port))?.close_() != nil {
                    ready.insert(port)
                }
            }
            if ready.count == 2 { return }
            sleepSeconds(0.1)
        }
        throw HarnessError("zonelink serve did not answer on 127.0.0.1:\(pinnedPort) and :\(sourcePort) within \(Int(timeout)) s.\n\(logs)")
    }

    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(process, timeout: 5)
        }
    }

    /// SIGTERM, then wait for the exit: (ended within the timeout, exited normally, status).
    /// The bound is generous: on this 2-core machine the suite runs schemathesis, namespace
    /// labs and PostgreSQL beside the server, and a clean stop there has taken over 15 s (the
    /// hostile-input test's, in a full run); systemd itself waits 90 s (TimeoutStopSec). A
    /// stop that hangs still fails.
    func terminate(timeout: Double = 60) -> (ended: Bool, exited: Bool, status: Int32) {
        guard process.isRunning else {
            return (true, process.terminationReason == .exit, process.terminationStatus)
        }
        process.terminate()
        guard waitForExit(process, timeout: timeout) else {
            kill()
            return (false, false, -1)
        }
        return (true, process.terminationReason == .exit, process.terminationStatus)
    }

    func cleanUp() {
        backends.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Starts a server on a test config, runs `body`, then stops it with SIGTERM and expects
/// exit status 0 (within `terminate`'s bound). On a thrown error the server is killed and the error rethrown.
func withZoneLink(tag: String, mutate: (String) -> String = { $0 },
                  _ body: (ZoneLinkServer) async throws -> Void) async throws {
    let config = try TestConfig.local(mutate: mutate)
    let server = try ZoneLinkServer.launch(config, tag: tag)
    do {
        try await offload { try server.waitUntilReady() }
        try await body(server)
    } catch {
        server.kill()
        server.cleanUp()
        throw error
    }
    let (ended, exited, status) = try await offload { server.terminate() }
    #expect(ended, "zonelink serve did not exit within 60 s of SIGTERM.\n\(server.logs)")
    if ended {
        #expect(exited && status == 0, "zonelink serve: after SIGTERM expected exit status 0, got \(exited ? "exit" : "signal") \(status).\n\(server.logs)")
    }
    server.cleanUp()
}

/// NSD serving zone files on a loopback port (foreground, `-d`, stopped by pid).
final class NSDServer: @unchecked Sendable {
    let process: Process
    let dir: URL
    let port: UInt16

    private init(process: Process, dir: URL, port: UInt16) {
        self.process = process
        self.dir = dir
        self.port = port
    }

    /// zones: (origin, absolute zone file path).
    static func start(zones: [(String, String)], probe: String, timeout: Double = 20) throws -> NSDServer {
        let dir = try Paths.makeTempDir("nsd")
        let port = try LoopbackPorts.free()
        let p = try NSD.launch(zones: zones.map { (origin: $0.0, file: $0.1) }, port: port, in: dir)
        let server = NSDServer(process: p, dir: dir, port: port)
        let client = try UDPClient()
        let deadline = monotonicNow() + timeout
        var id: UInt16 = 7
        while monotonicNow() < deadline {
            guard p.isRunning else {
                throw HarnessError("nsd exited early: \(server.logs)")
            }
            id &+= 1
            if let reply = client.query(DNSQuery.build(id: id, name: probe, type: RRType.SOA), port: port, timeout: 0.2),
               let r = DNSResponse.parse(reply), r.rcode == Rcode.NOERROR, !r.answer.isEmpty {
                return server
            }
            sleepSeconds(0.1)
        }
        server.stop()
        throw HarnessError("nsd did not serve \(probe) on port \(port) within \(Int(timeout)) s: \(server.logs)")
    }

    var logs: String { cap(NSD.logs(in: dir), 4000) }

    func stop() {
        NSD.stop(process)
        try? FileManager.default.removeItem(at: dir)
    }
}

