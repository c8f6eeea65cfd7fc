// Issue "Safe to share": the control API's bounds, the descriptor budget and the gateway's
// per-client limits, against the real server on loopback. Every attack is bounded in count and
// time; every wait is for a condition, with a generous deadline, never a measured speed.
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Raw sockets for attackers and clients

enum RawSocket {
    /// A connected stream socket to the Unix socket at `path`.
    static func unix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes + [0])
        }
        guard withSocketAddress(address, { connect(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect to \(path): errno \(code)")
        }
        return fd
    }

    /// A connected TCP socket to `host:port`, from `source` when given.
    static func tcp(_ host: String, _ port: UInt16, from source: String? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        if let source, withSocketAddress(sockaddr_in(port: 0, host: source), { bind(fd, $0, $1) }) != 0 {
            let code = errno
            close(fd)
            throw HarnessError("bind to \(source): errno \(code)")
        }
        guard withSocketAddress(sockaddr_in(port: port, host: host), { connect(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect to \(host):\(port): errno \(code)")
        }
        return fd
    }

    /// True when the peer has closed (EOF or reset), looking without waiting.
    static func isClosed(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
        if n == 0 { return true }
        if n < 0 { return errno != EAGAIN && errno != EWOULDBLOCK }
        return false
    }

    /// Bytes the peer sends, until `expected` bytes are in, EOF or reset, or the deadline;
    /// nil when the connection was closed or reset before any byte came.
    static func read(_ fd: Int32, expected: Int, timeout: Double) -> [UInt8]? {
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let deadline = monotonicNow() + timeout
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while got.count < expected, monotonicNow() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { got += buffer[0..<n]; continue }
            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { return got.isEmpty ? nil : got }
        }
        return got
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }
}

/// Waits until `count` (default: every one) of the sockets in `fds` are closed by the peer,
/// at most `timeout` s. Trickling ones get one more byte of a request head that never ends
/// each round. Returns how many were closed.
func waitUntilClosed(
    _ fds: [Int32], trickling: Bool, count: Int? = nil, timeout: Double = 30, sample: () -> Void = {}
) -> Int {
    let head = Array("GET /v1/nat HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8) + Array(repeating: UInt8(ascii: "X"), count: 4096)
    var closed = Set<Int32>()
    var sent = 0
    let deadline = monotonicNow() + timeout
    while closed.count < (count ?? fds.count), monotonicNow() < deadline {
        for fd in fds where !closed.contains(fd) {
            if RawSocket.isClosed(fd) || (trickling && !RawSocket.send(fd, [head[sent % head.count]])) { closed.insert(fd) }
        }
        sent += 1
        sample()
        sleepSeconds(0.25)
    }
    return closed.count
}

/// Descriptors the process has open (`/proc/PID/fd`).
func openDescriptors(of pid: pid_t) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
}

/// The value of one series (`name` or `name{labels}`) in a Prometheus text exposition.
func metricValue(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1).trimmingCharacters(in: .whitespaces))
    }
    return nil
}

extension ControlAPIServer {
    /// A request that may first find every connection place taken: retried until it is
    /// answered 200, for at most `timeout` s.
    func politely(_ method: String, _ path: String, timeout: Double = 30) throws -> HTTPReply {
        let deadline = monotonicNow() + timeout
        var last = "no answer"
        while monotonicNow() < deadline {
            do {
                let reply = try request(method, path, timeout: 5)
                if reply.status == 200 { return reply }
                last = "\(reply.status) \(reply.body)"
            } catch {
                last = "\(error)"
            }
            sleepSeconds(0.2)
        }
        throw HarnessError("\(method) \(path) was not answered 200 within \(Int(timeout)) s: \(last)\n\(logs)")
    }

    func metric(_ series: String) throws -> Double {
        let text = try politely("GET", "/metrics").body
        guard let value = metricValue(text, series) else {
            throw HarnessError("no \(series) in /metrics:\n\(cap(text, 3000))")
        }
        return value
    }

    /// Waits until `series` reaches `value` (metrics refresh once a second), at most 30 s.
    func waitForMetric(_ series: String, atLeast value: Double) throws -> Double {
        let deadline = monotonicNow() + 30
        var last = -1.0
        while monotonicNow() < deadline {
            // Absent until the first refresh after start.
            last = metricValue(try politely("GET", "/metrics").body, series) ?? -1
            if last >= value { return last }
            sleepSeconds(0.5)
        }
        throw HarnessError("\(series) stayed at \(last), below \(value), for 30 s.\n\(logs)")
    }
}

/// Backend stand-ins that accept, greet each connection with `hello\n` and keep it open until
/// `stop()`: flows through the gateway stay open, and a client can tell a relayed flow (it
/// hears the greeting) from a refused one (reset or closed before any byte).
final class HoldingBackends: @unchecked Sendable {
    static let greeting = Array("hello\n".utf8)
    private let listeners: [Int32]
    private let lock = NSLock()
    private var held: [Int32] = []
    private let done = DispatchGroup()

    init(addresses: [String], port: UInt16) throws {
        let listeners = try listeningSockets(addresses, port, backlog: 1024)
        self.listeners = listeners
        for fd in listeners {
            done.enter()
            Thread.detachNewThread { [self] in
                while true {
                    let connection = accept(fd, nil, nil)
                    if connection >= 0 {
                        _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                        _ = RawSocket.send(connection, Self.greeting)
                        lock.lock()
                        held.append(connection)
                        lock.unlock()
                        continue
                    }
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                done.leave()
            }
        }
    }

    func stop() {
        listeners.forEach { shutdown($0, Int32(SHUT_RDWR)) }
        _ = done.wait(timeout: .now() + 5)
        listeners.forEach { close($0) }
        lock.lock()
        held.forEach { close($0) }
        held = []
        lock.unlock()
    }
}

/// A request made on its own thread while the caller runs an attack.
final class PoliteClient: @unchecked Sendable {
    private var result: Result<HTTPReply, Error>?
    private let answered = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> HTTPReply) {
        Thread.detachNewThread { [self] in
            result = Result { try body() }
            answered.signal()
        }
    }

    /// Waits for the answer (the request bounds its own time).
    func reply() throws -> HTTPReply {
        answered.wait()
        return try result!.get()
    }
}

/// Lets this test process hold the attack's sockets as well as the backends' (both ends of
/// hundreds of flows on loopback).
func raiseOwnDescriptorLimit() {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// `sections` added at the top level of the test config.
func withSections(_ sections: String) -> (String) -> String {
    { $0.replacingOccurrences(of: "\naccounts:\n", with: "\n\(sections)\naccounts:\n") }
}

// MARK: - Tests

@Suite("Safe to share: control API bounds, descriptor budget, gateway limits", .serialized)
struct LimitsTests {
    static let connections = 8

    @Test("silent and trickling control connections: over the limit closed at once, the rest after headerTimeout; the API still answers")
    func controlConnectionFlood() async throws {
        let server = try ControlAPIServer(tag: "limits-ctl", mutate: withSections("""
            control: {connections: \(Self.connections), headerTimeout: 5s, bodyTimeout: 5s, idleTimeout: 120s}
            """))
        defer { server.cleanUp() }
        try await offload { try server.start() }
        let pid = try #require(server.pid)
        let baseline = openDescriptors(of: pid)
        let attackers = 2 * Self.connections

        // Silent: connect to the control socket and say nothing.
        let (silentClosed, silentPeak) = try await offload {
            let fds = try (0..<attackers).map { _ in try RawSocket.unix(server.socketPath) }
            defer { fds.forEach { close($0) } }
            var peak = 0
            let closed = waitUntilClosed(fds, trickling: false) { peak = max(peak, openDescriptors(of: pid)) }
            return (closed, peak)
        }
        #expect(silentClosed == attackers, "only \(silentClosed) of \(attackers) silent connections were closed within 30 s.\n\(server.logs)")
        #expect(silentPeak <= baseline + Self.connections + 16, "the server held \(silentPeak) descriptors (\(baseline) before the attack).\n\(server.logs)")
        #expect(try await offload { try server.metric("zonelink_control_connections_refused") } == Double(Self.connections),
                "the connections past control.connections were not closed at once")
        #expect(try await offload { try server.metric("zonelink_control_connections_timed_out") } == Double(Self.connections),
                "the silent connections within the limit were not closed by control.headerTimeout")

        // Trickling: a byte of a head that never ends every quarter second, while a polite
        // client with a token asks for the NAT table.
        let (trickleClosed, tricklePeak, nat) = try await offload {
            let fds = try (0..<attackers).map { _ in try RawSocket.unix(server.socketPath) }
            defer { fds.forEach { close($0) } }
            var peak = 0
            // Once the connections past the limit are closed, the others hold every place;
            // only then does the polite client come, so it cannot take one of theirs.
            let refused = waitUntilClosed(fds, trickling: true, count: attackers - Self.connections) {
                peak = max(peak, openDescriptors(of: pid))
            }
            guard refused == attackers - Self.connections else {
                throw HarnessError("\(refused) trickling connections were closed at once, not \(attackers - Self.connections)")
            }
            let polite = PoliteClient { try server.politely("GET", "/v1/nat") }
            let closed = waitUntilClosed(fds, trickling: true) { peak = max(peak, openDescriptors(of: pid)) }
            return (closed, peak, try polite.reply())
        }
        #expect(trickleClosed == attackers, "only \(trickleClosed) of \(attackers) trickling connections were closed within 30 s.\n\(server.logs)")
        #expect(tricklePeak <= baseline + Self.connections + 16, "the server held \(tricklePeak) descriptors (\(baseline) before the attack).\n\(server.logs)")
        #expect(nat.body.hasPrefix("["), "GET /v1/nat during the attack: \(nat.body)")
        let timedOut = try await offload { try server.metric("zonelink_control_connections_timed_out") }
        let refused = try await offload { try server.metric("zonelink_control_connections_refused") }
        #expect(timedOut >= Double(2 * Self.connections),
                "trickling connections were not closed by control.headerTimeout: \(timedOut) timed out, \(refused) refused in all.\n\(server.logs)")
        #expect(try await offload { server.stop(timeout: 15) }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
    }

    @Test("a request that sends 100 of its declared 1,000 body bytes is closed after bodyTimeout")
    func halfSentBody() async throws {
        let server = try ControlAPIServer(tag: "limits-body", mutate: withSections("""
            control: {bodyTimeout: 2s, idleTimeout: 120s, headerTimeout: 120s}
            """))
        defer { server.cleanUp() }
        try await offload { try server.start() }
        let closedEarly = try await offload {
            let fd = try RawSocket.tcp("127.0.0.1", server.controlPort)
            defer { close(fd) }
            let head = "POST /v1/services HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(server.token)\r\n"
                + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            guard RawSocket.send(fd, Array(head.utf8) + Array(repeating: UInt8(ascii: " "), count: 100)) else {
                throw HarnessError("send: errno \(errno)")
            }
            // Closed well before the 120 s head and idle timeouts could have done it.
            return waitUntilClosed([fd], trickling: false, timeout: 60) == 1
        }
        #expect(closedEarly, "the half-sent request was still open after 60 s.\n\(server.logs)")
        #expect(try await offload { try server.metric("zonelink_control_connections_timed_out") } == 1,
                "the connection was not closed by control.bodyTimeout.\n\(server.logs)")
        // And it still answers.
        _ = try await offload { try server.politely("GET", "/v1/services") }
        #expect(try await offload { server.stop(timeout: 15) }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
    }

    @Test("under prlimit --nofile=1024 a flood of flows spends only the client budget: flows refused, backends healthy, API answers")
    func descriptorFlood() async throws {
        raiseOwnDescriptorLimit()
        let server = try ControlAPIServer(tag: "limits-fd", descriptorLimit: 1024)
        defer { server.cleanUp() }
        let backends = try HoldingBackends(addresses: TestConfig.backendAddresses, port: server.config.backendPort)
        defer { backends.stop() }
        try await offload { try server.start() }
        let eni = server.config.eniPort
        let flood = 500  // more flows than 1024 descriptors less the reserve can carry (two each)
        let started = monotonicNow()

        let (relayed, refused, fds) = try await offload {
            var fds: [Int32] = []
            var relayed = 0, refused = 0
            for n in 0..<flood {
                // Clients spread over addresses, so no per-client limit is what stops them.
                let fd = try RawSocket.tcp("127.10.2.50", eni, from: "127.10.2.\(100 + n % 50)")
                fds.append(fd)
                if RawSocket.read(fd, expected: HoldingBackends.greeting.count, timeout: 30) == HoldingBackends.greeting {
                    relayed += 1
                } else {
                    refused += 1
                }
            }
            return (relayed, refused, fds)
        }
        defer { fds.forEach { close($0) } }
        print("descriptor flood: \(relayed) flows relayed, \(refused) refused of \(flood) under --nofile=1024")
        #expect(relayed > 100, "only \(relayed) flows were relayed before the budget ran out.\n\(server.logs)")
        #expect(refused > 0, "all \(flood) flows were relayed: the budget did not refuse any.\n\(server.logs)")
        let counted = try await offload { try server.waitForMetric(#"zonelink_flows_refused_total{reason="descriptors"}"#, atLeast: Double(refused)) }
        #expect(counted == Double(refused))

        // With the client budget spent, probes keep succeeding (every backend stays healthy
        // over several probe intervals) and the API answers each time.
        try await offload {
            let start = try server.metric(#"zonelink_flows_refused_total{reason="descriptors"}"#)
            for _ in 0..<6 {
                let health = try server.politely("GET", "/v1/health").body
                guard !health.contains("\"healthy\":false") else { throw HarnessError("a backend or zone turned unhealthy: \(health)\n\(server.logs)") }
                // A new flow is still refused, never relayed.
                let fd = try RawSocket.tcp("127.10.2.50", eni, from: "127.10.2.99")
                defer { close(fd) }
                guard RawSocket.read(fd, expected: HoldingBackends.greeting.count, timeout: 30) != HoldingBackends.greeting else {
                    throw HarnessError("a flow was relayed with the client budget spent")
                }
                sleepSeconds(2)
            }
            _ = try server.waitForMetric(#"zonelink_flows_refused_total{reason="descriptors"}"#, atLeast: start + 6)
            let nat = try server.politely("GET", "/v1/nat").body
            guard nat.hasPrefix("[") else { throw HarnessError("GET /v1/nat: \(nat)") }
        }
        // Hundreds of refusals: the first line, then at most one per 10 s with a count.
        let most = 2 + Int((monotonicNow() - started) / 10)
        let log = (try? String(contentsOf: server.logPath, encoding: .utf8)) ?? ""
        let lines = log.split(separator: "\n").filter { $0.contains("flow refused") }
        #expect((1...most).contains(lines.count), "\(lines.count) 'flow refused' lines for \(refused + 6) refusals.\n\(server.logs)")
        #expect(log.contains("file descriptors"), "serve did not log its descriptor budget.\n\(server.logs)")
        #expect(try await offload { server.stop(timeout: 15) }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
    }

    @Test("flows past gateway.limits.flowsPerClient are refused while another client's flow works")
    func perClientCap() async throws {
        let server = try ControlAPIServer(tag: "limits-client", mutate: { yaml in
            yaml.replacingOccurrences(of: "\naccounts:\n", with: "\ngateway: {limits: {flowsPerClient: 3}}\naccounts:\n")
        })
        defer { server.cleanUp() }
        let backends = try HoldingBackends(addresses: TestConfig.backendAddresses, port: server.config.backendPort)
        defer { backends.stop() }
        try await offload { try server.start() }
        let eni = server.config.eniPort

        let (first, fourth, other, fds) = try await offload {
            var fds: [Int32] = []
            func flow(from client: String) throws -> Bool {
                let fd = try RawSocket.tcp("127.10.2.50", eni, from: client)
                fds.append(fd)
                return RawSocket.read(fd, expected: HoldingBackends.greeting.count, timeout: 30) == HoldingBackends.greeting
            }
            let first = try (0..<3).map { _ in try flow(from: "127.10.2.10") }
            let fourth = try flow(from: "127.10.2.10")
            let other = try flow(from: "127.10.2.11")
            return (first, fourth, other, fds)
        }
        defer { fds.forEach { close($0) } }
        #expect(first == [true, true, true], "the client's first three flows: \(first)\n\(server.logs)")
        #expect(!fourth, "the client's fourth flow was relayed past flowsPerClient: 3.\n\(server.logs)")
        #expect(other, "another client's flow was refused.\n\(server.logs)")
        let counted = try await offload { try server.waitForMetric(#"zonelink_flows_refused_total{reason="flows_per_client"}"#, atLeast: 1) }
        #expect(counted == 1)
        let nat = try await offload { try server.politely("GET", "/v1/nat").body }
        #expect(nat.components(separatedBy: "127.10.2.10:").count - 1 == 3, "nat list: \(nat)")
        let log = (try? String(contentsOf: server.logPath, encoding: .utf8)) ?? ""
        #expect(log.split(separator: "\n").filter { $0.contains("flow refused") }.count == 1, "one refusal, one line.\n\(server.logs)")
        #expect(try await offload { server.stop(timeout: 15) }, "zonelink serve did not exit 0 on SIGTERM.\n\(server.logs)")
    }
}
