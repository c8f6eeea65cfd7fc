// Issue 4, persistence: the control plane's state survives a restart, and `kill -9` during
// 200 concurrent API writes loses no acknowledged write and invents none.
import Foundation
import ZoneLinkTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - A `zonelink serve` with its control API on a loopback TCP port

/// `zonelink serve` on zones/local.yaml (free ports), with a tokens file holding one operator
/// token in its state directory and the control API also on `--control-tcp`. The state
/// directory outlives a kill, so that the server can be started again on it.
final class ControlAPIServer: @unchecked Sendable {
    let dir: URL
    let stateDir: URL
    let configURL: URL
    let config: TestConfig
    let token: String
    private(set) var process: Process?
    private(set) var controlPort: UInt16 = 0
    /// Niceness of the server (`nice -n`): a load generator's server yields to other tests.
    let niceness: Int
    /// Run the server under `prlimit --nofile=N` (soft and hard), as a host with a low limit would.
    let descriptorLimit: Int?
    /// More `serve` options (`--store`, say).
    var extraArguments: [String] = []
    private var run = 0

    /// `mutate` edits the config (limits under test); `descriptorLimit` caps the server's descriptors.
    init(tag: String, niceness: Int = 0, descriptorLimit: Int? = nil, mutate: (String) -> String = { $0 }) throws {
        self.niceness = niceness
        self.descriptorLimit = descriptorLimit
        config = try TestConfig.local(mutate: mutate)
        dir = try Paths.makeTempDir(tag)
        stateDir = dir.appendingPathComponent("state")
        configURL = dir.appendingPathComponent("zonelink.yaml")
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        try config.yaml.write(to: configURL, atomically: true, encoding: .utf8)
        token = "test-operator-\(UInt64.random(in: 0...UInt64.max))"
        try "# test tokens\noperator \(sha256Hex(token))\n"
            .write(to: stateDir.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
    }

    var logPath: URL { dir.appendingPathComponent("server-\(run).stderr") }

    var logs: String {
        let err = (try? String(contentsOf: logPath, encoding: .utf8)) ?? ""
        return "server log (run \(run)):\n\(cap(err, 4000))"
    }

    /// Starts (or starts again) the server on a fresh control port and waits until
    /// `GET /v1/health` answers 200.
    func start(timeout: Double = 30) throws {
        precondition(process?.isRunning != true)
        run += 1
        controlPort = try LoopbackPorts.free()
        _ = FileManager.default.createFile(atPath: logPath.path, contents: nil)
        let p = Process()
        let binary = try Paths.requireZonelink()
        // nice and prlimit exec the server: the pid stays the server's.
        var command = [binary.path]
        if let descriptorLimit { command = ["/usr/bin/prlimit", "--nofile=\(descriptorLimit)"] + command }
        if niceness != 0 { command = ["/usr/bin/nice", "-n", String(niceness)] + command }
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst()) + ["serve", "--config", configURL.path, "--threads", "1", "--state-dir", stateDir.path,
                       "--control-tcp", String(controlPort)] + extraArguments
        p.currentDirectoryURL = dir
        p.standardInput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: logPath)
        p.standardOutput = try FileHandle(forWritingTo: logPath)
        try launchProcess(p)
        process = p
        let deadline = monotonicNow() + timeout
        while monotonicNow() < deadline {
            guard p.isRunning else {
                throw HarnessError("zonelink serve exited early (status \(p.terminationStatus)).\n\(logs)")
            }
            if let r = try? request("GET", "/v1/health", timeout: 1), r.status == 200 { return }
            sleepSeconds(0.1)
        }
        kill()
        throw HarnessError("the control API did not answer on 127.0.0.1:\(controlPort) within \(Int(timeout)) s.\n\(logs)")
    }

    func request(_ method: String, _ path: String, json: String? = nil, timeout: Double = 10) throws -> HTTPReply {
        try httpRequest(port: controlPort, method: method, path: path, token: token, body: json, timeout: timeout)
    }

    /// The control socket in the state directory.
    var socketPath: String { stateDir.appendingPathComponent("control.sock").path }

    /// The server's pid (nice and prlimit exec it).
    var pid: pid_t? { process?.processIdentifier }

    /// SIGKILL, no questions asked.
    func kill() {
        guard let p = process, p.isRunning else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        _ = waitForExit(p, timeout: 5)
    }

    /// SIGTERM; true when it exited with status 0 within the timeout.
    func stop(timeout: Double = 5) -> Bool {
        guard let p = process, p.isRunning else { return process?.terminationStatus == 0 }
        p.terminate()
        guard waitForExit(p, timeout: timeout) else { kill(); return false }
        return p.terminationReason == .exit && p.terminationStatus == 0
    }

    func cleanUp() {
        kill()
        try? FileManager.default.removeItem(at: dir)
    }
}

func sha256Hex(_ s: String) -> String {
    // sha256sum is in coreutils; spares the test target a crypto dependency.
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["sha256sum"]
    let inPipe = Pipe(), outPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    try? p.run()
    inPipe.fileHandleForWriting.write(Data(s.utf8))
    try? inPipe.fileHandleForWriting.close()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}

// MARK: - A minimal HTTP/1.1 client (one request per connection)

struct HTTPReply: Sendable {
    var status: Int
    var body: String
}

/// One request to 127.0.0.1:port with `Connection: close`; throws on any socket error, a
/// timeout, or a reply that is not HTTP.
func httpRequest(port: UInt16, method: String, path: String, token: String?, body: String?,
                 timeout: Double) throws -> HTTPReply {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int(timeout.truncatingRemainder(dividingBy: 1) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in(port: port, host: "127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw HarnessError("connect to 127.0.0.1:\(port): errno \(errno)") }
    let payload = Array((body ?? "").utf8)
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    if let token { head += "Authorization: Bearer \(token)\r\n" }
    if body != nil { head += "Content-Type: application/json\r\n" }
    head += "Content-Length: \(payload.count)\r\n\r\n"
    let bytes = Array(head.utf8) + payload
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw HarnessError("send: errno \(errno)") }
        sent += n
    }
    var reply: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { break }
        guard n > 0 else { throw HarnessError("recv: errno \(errno)") }
        reply += buffer[0..<n]
        if let complete = parseHTTPReply(reply), complete.1 { return complete.0 }
    }
    guard let parsed = parseHTTPReply(reply), parsed.1 else {
        throw HarnessError("incomplete HTTP reply (\(reply.count) bytes)")
    }
    return parsed.0
}

/// (reply, complete) once the head is in; complete when Content-Length bytes of body are.
private func parseHTTPReply(_ bytes: [UInt8]) -> (HTTPReply, Bool)? {
    let crlf2: [UInt8] = [13, 10, 13, 10]
    guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<$0 + 4]) == crlf2 }) else {
        return nil
    }
    let head = String(decoding: bytes[0..<end], as: UTF8.self)
    let lines = head.components(separatedBy: "\r\n")
    let statusFields = lines[0].split(separator: " ")
    guard statusFields.count >= 2, statusFields[0].hasPrefix("HTTP/1."), let status = Int(statusFields[1]) else {
        return nil
    }
    var length: Int?
    for line in lines.dropFirst() {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2, parts[0].lowercased() == "content-length" {
            length = Int(parts[1].trimmingCharacters(in: .whitespaces))
        }
    }
    let body = Array(bytes[(end + 4)...])
    let complete = length.map { body.count >= $0 } ?? false
    let text = String(decoding: length.map { Array(body.prefix($0)) } ?? body, as: UTF8.self)
    return (HTTPReply(status: status, body: text), complete)
}

// MARK: - Tests

@Suite("Control plane persistence (issue 4)", .serialized)
struct ControlPersistenceTests {
    static let service = "epsrv-frankfurt1"

    /// The accounts on the service's whitelist, in the order listed (duplicates kept).
    static func whitelist(_ server: ControlAPIServer) throws -> [String] {
        let r = try server.request("GET", "/v1/services/\(service)/whitelist")
        guard r.status == 200 else { throw HarnessError("GET whitelist -> \(r.status): \(r.body)") }
        guard let array = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]] else {
            throw HarnessError("GET whitelist: not a JSON array of objects: \(r.body)")
        }
        return array.compactMap { $0["account"] as? String }
    }

    static func account(_ n: Int, run: UInt64) -> String {
        // 16 digits, distinct per n, and unlike the file's accounts (1111…, 2222…).
        String(format: "9%07llu%08d", run % 10_000_000, n)
    }

    @Test("a restart keeps every API object: services, whitelist entries, endpoints and their connection state")
    func restartKeepsEverything() async throws {
        let server = try ControlAPIServer(tag: "ctl-restart")
        defer { server.cleanUp() }
        try await offload { try server.start() }

        // A service of account B (manual accept), a whitelist entry, an endpoint of account A, accepted.
        let steps: [(String, String, String, Int)] = [
            ("POST", "/v1/services", #"{"id":"epsrv-persist1","account":"2222222222222222","resources":[{"zone":"eu-central-1b","loadBalancer":"clb-1b"}],"autoAcceptConnections":false,"zoneAffinity":true}"#, 201),
            ("POST", "/v1/services/epsrv-persist1/whitelist", #"{"account":"1111111111111111"}"#, 201),
            ("POST", "/v1/services/\(Self.service)/whitelist", #"{"account":"3333333333333333"}"#, 201),
            ("POST", "/v1/endpoints", #"{"id":"ep-persist1","account":"1111111111111111","service":"epsrv-persist1","vpc":"vpc-1","zones":[{"zone":"eu-central-1b","vswitch":"vsw-1b"}]}"#, 201),
            ("POST", "/v1/services/epsrv-persist1/connections/ep-persist1/accept", "", 200),
        ]
        for (method, path, body, expected) in steps {
            let r = try await offload { try server.request(method, path, json: body.isEmpty ? nil : body) }
            try #require(r.status == expected, "\(method) \(path) -> \(r.status) \(r.body)\n\(server.logs)")
        }
        let paths = ["/v1/services", "/v1/services/epsrv-persist1", "/v1/services/epsrv-persist1/whitelist",
                     "/v1/services/\(Self.service)/whitelist", "/v1/endpoints", "/v1/endpoints/ep-persist1",
                     "/v1/services/epsrv-persist1/connections"]
        @Sendable func snapshot() throws -> [String: String] {
            var out: [String: String] = [:]
            for path in paths {
                let r = try server.request("GET", path)
                guard r.status == 200 else { throw HarnessError("GET \(path) -> \(r.status) \(r.body)") }
                out[path] = try canonicalJSON(r.body)
            }
            return out
        }
        let before = try await offload { try snapshot() }
        #expect(before["/v1/endpoints/ep-persist1"]?.contains("\"connection\":\"Connected\"") == true,
                "ep-persist1 should be Connected after accept: \(before["/v1/endpoints/ep-persist1"] ?? "")")

        // Clean stop, start again: the same answers.
        #expect(try await offload { server.stop() }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
        try await offload { try server.start() }
        let afterStop = try await offload { try snapshot() }
        for path in paths {
            #expect(afterStop[path] == before[path], "after SIGTERM and restart, GET \(path) changed:\nbefore \(before[path] ?? "-")\nafter  \(afterStop[path] ?? "-")")
        }

        // kill -9 with nothing in flight, start again: the same answers.
        try await offload { server.kill() }
        try await offload { try server.start() }
        let afterKill = try await offload { try snapshot() }
        for path in paths {
            #expect(afterKill[path] == before[path], "after kill -9 and restart, GET \(path) changed:\nbefore \(before[path] ?? "-")\nafter  \(afterKill[path] ?? "-")")
        }
        #expect(try await offload { server.stop() }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
    }

    @Test("kill -9 during 200 concurrent whitelist adds: every acknowledged add is there after restart, nothing unsent")
    func killDuringConcurrentWrites() async throws {
        let server = try ControlAPIServer(tag: "ctl-kill9")
        defer { server.cleanUp() }
        try await offload { try server.start() }
        let initial = try await offload { try Self.whitelist(server) }

        let run = UInt64.random(in: 0...UInt64.max)
        let sent = (0..<200).map { Self.account($0, run: run) }
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var acked: Set<String> = []
            var refused: [String: Int] = [:]
            var failed = 0
            var killedAt: Int?
        }
        let tally = Tally()
        let killAfter = 100
        let started = monotonicNow()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for account in sent {
                group.addTask {
                    try await offload {
                        let reply = try? server.request("POST", "/v1/services/\(Self.service)/whitelist",
                                                        json: #"{"account":"\#(account)"}"#, timeout: 15)
                        tally.lock.lock()
                        defer { tally.lock.unlock() }
                        guard let reply else { tally.failed += 1; return }
                        if (200..<300).contains(reply.status) {
                            tally.acked.insert(account)
                            if tally.acked.count == killAfter && tally.killedAt == nil {
                                tally.killedAt = tally.acked.count
                                server.kill()
                            }
                        } else {
                            tally.refused[account] = reply.status
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = monotonicNow() - started
        try await offload { server.kill() }   // in case fewer than killAfter were acknowledged
        let acked = tally.acked
        print("kill -9 test: \(acked.count) acknowledged, \(tally.failed) without reply, \(tally.refused.count) refused, killed after \(tally.killedAt.map(String.init) ?? "-") acks, \(String(format: "%.2f", elapsed)) s")
        #expect(tally.refused.isEmpty, "writes answered with a non-2xx status before the kill: \(tally.refused.prefix(5))\n\(server.logs)")
        try #require(acked.count >= killAfter, "fewer than \(killAfter) writes were acknowledged before the kill (\(acked.count)).\n\(server.logs)")

        try await offload { try server.start() }
        let after = try await offload { try Self.whitelist(server) }
        let afterSet = Set(after)
        #expect(after.count == afterSet.count, "duplicate whitelist entries after restart: \(Dictionary(grouping: after, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted())")
        let lost = acked.subtracting(afterSet)
        #expect(lost.isEmpty, "\(lost.count) acknowledged adds are missing after kill -9 and restart: \(lost.sorted().prefix(10))\n\(server.logs)")
        let invented = afterSet.subtracting(sent).subtracting(initial)
        #expect(invented.isEmpty, "accounts nobody sent are on the whitelist after restart: \(invented.sorted())")
        let gone = Set(initial).subtracting(afterSet)
        #expect(gone.isEmpty, "entries that were there before the writes are gone after restart: \(gone.sorted())")
        let unackedPresent = afterSet.intersection(sent).subtracting(acked).count
        print("kill -9 test: after restart \(afterSet.intersection(sent).count) of the sent accounts are listed (\(unackedPresent) committed but not acknowledged)")

        // The server still takes writes on the recovered state, and a whitelisted account is
        // refused a second time as a conflict.
        if let one = acked.first {
            let again = try await offload { try server.request("POST", "/v1/services/\(Self.service)/whitelist", json: #"{"account":"\#(one)"}"#) }
            #expect(again.status == 409, "re-adding an acknowledged account after restart: \(again.status) \(again.body)")
        }
        #expect(try await offload { server.stop() }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
    }
}

/// JSON re-serialised with sorted keys, for comparing answers.
func canonicalJSON(_ text: String) throws -> String {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])
    return String(decoding: data, as: UTF8.self)
}
