// The forwarder against real upstreams on loopback: NSD serving a small zone, ports where
// nothing listens, a black hole, and fake upstreams (sockets these tests own) that spoof,
// fail or answer slowly. The `Forwarder` is driven directly, not through `zonelink serve`.
import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import ZoneLinkTestSupport
import ZoneLinkCore
@testable import ZoneLinkDNS

@Suite("Forwarder against real upstreams")
struct ForwarderIntegrationTests {
    static let zone = """
        $ORIGIN fwd.test.
        $TTL 300
        @       300 IN SOA ns1.fwd.test. hostmaster.fwd.test. 1 3600 600 86400 2
        @       300 IN NS ns1.fwd.test.
        ns1     300 IN A 127.0.0.1
        www     300 IN A 192.0.2.10
        two     300 IN A 192.0.2.11
        three   300 IN A 192.0.2.12

        """ + (1...60).map { "big 300 IN TXT \"record \($0) of a set too large for one UDP datagram of 1232 bytes\"\n" }.joined()

    @Test func answersAreForwardedCachedAndAged() async throws {
        let nsd = try await NSDUpstream.start(zone: Self.zone, origin: "fwd.test")
        defer { nsd.stop() }
        try await withForwarder([nsd.endpoint]) { (forwarder) async throws in
            let first = queryMessage("WWW.Fwd.Test", .a, id: 0x1111)
            let (bytes, _) = await resolveThrough(forwarder, first)
            let response = try #require(decode(bytes))
            #expect(response.id == 0x1111 && response.rcode == 0 && !response.aa && !response.tc)
            #expect(response.answer == ["WWW.Fwd.Test. 300 IN A 192.0.2.10"])
            #expect(response.ednsSize == 1232)
            #expect(Array(bytes[12..<(12 + 14 + 4)]) == Array(first[12..<(12 + 14 + 4)]), "the client's question, byte for byte")
            #expect(bytes[3] & 0x80 == 0, "RA as the upstream says: NSD, authoritative only, offers no recursion")
            #expect(forwarder.statistics.upstreamQueries == 1 && forwarder.statistics.cacheEntries == 1)

            // The upstream goes away: the cache answers, TTLs one second lower a second later.
            nsd.stop()
            #expect(try udpExchange(queryMessage("www.fwd.test", .a), port: nsd.endpoint.port, timeout: 0.3) == nil, "NSD is stopped")
            try await Task.sleep(for: .milliseconds(1100))
            let second = queryMessage("www.fwd.test", .a, id: 0x2222, edns: nil)
            let query = try #require(parsedQuery(second))
            var output = ByteBuffer()
            let hit = second.withUnsafeBytes { forwarder.answerFromCache(query, message: $0, limit: query.udpPayloadLimit, into: &output) }
            #expect(hit)
            let cached = try #require(decode(Array(output.readableBytesView)))
            #expect(cached.id == 0x2222 && cached.rcode == 0 && cached.ednsSize == nil)
            let ttl = try #require(cached.answer.first.flatMap { Int($0.split(separator: " ")[1]) })
            // Aged by at least the second slept; how much more depends on the machine's load.
            #expect((200...299).contains(ttl), "aged TTL, got \(cached.answer)")
            let third = try #require(decode(await resolveThrough(forwarder, queryMessage("wWw.fWd.tEst", .a, id: 0x3333)).response))
            #expect(third.id == 0x3333 && third.answer.first?.hasPrefix("wWw.fWd.tEst. ") == true)
            let statistics = forwarder.statistics
            #expect(statistics.upstreamQueries == 1 && statistics.cacheHits == 2, "\(statistics)")

            // Not cached and no upstream: SERVFAIL at once (ICMP port unreachable).
            let (failed, seconds) = await resolveThrough(forwarder, queryMessage("two.fwd.test", .a))
            #expect(try #require(decode(failed)).rcode == 2)
            #expect(seconds < 0.5)
        }
    }

    /// The zone with a negative TTL (SOA MINIMUM) of 45 s: long enough that the cached lookups
    /// below come well within it on a busy machine, short enough to wait out.
    static let negativeZone = zone.replacingOccurrences(
        of: "hostmaster.fwd.test. 1 3600 600 86400 2", with: "hostmaster.fwd.test. 1 3600 600 86400 45")

    @Test func negativeAnswersAreCachedForTheNegativeTTL() async throws {
        let nsd = try await NSDUpstream.start(zone: Self.negativeZone, origin: "fwd.test")
        defer { nsd.stop() }
        try await withForwarder([nsd.endpoint]) { (forwarder) async throws in
            let nx = try #require(decode(await resolveThrough(forwarder, queryMessage("nope.fwd.test", .a)).response))
            #expect(nx.rcode == 3 && nx.answer.isEmpty)
            #expect(nx.authority.first?.hasPrefix("fwd.test. 45 IN SOA ") == true, "\(nx.authority)")
            let nodata = try #require(decode(await resolveThrough(forwarder, queryMessage("www.fwd.test", .txt)).response))
            #expect(nodata.rcode == 0 && nodata.answer.isEmpty && nodata.authority.count == 1)
            #expect(forwarder.statistics.upstreamQueries == 2)

            for (name, type, rcode) in [("NOPE.fwd.test", RRType.a, 3), ("www.fwd.test", .txt, 0)] {
                let message = queryMessage(name, type, id: 9)
                #expect(try #require(decode(await resolveThrough(forwarder, message).response)).rcode == UInt16(rcode))
            }
            #expect(forwarder.statistics.upstreamQueries == 2 && forwarder.statistics.cacheHits == 2)

            // After the negative TTL (min(SOA TTL 300, MINIMUM 45)) they are gone: wait for it,
            // with a generous deadline, rather than guess when.
            let message = queryMessage("nope.fwd.test", .a)
            let query = try #require(parsedQuery(message))
            func cached() -> Bool {
                var output = ByteBuffer()
                return message.withUnsafeBytes { forwarder.answerFromCache(query, message: $0, limit: 1232, into: &output) }
            }
            let deadline = ContinuousClock.now + .seconds(120)
            while cached(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
            #expect(!cached(), "the negative answer outlived its TTL")
            #expect(try #require(decode(await resolveThrough(forwarder, message).response)).rcode == 3)
            #expect(forwarder.statistics.upstreamQueries == 3)
        }
    }

    @Test func truncatedAnswersAreAskedAgainOverTCP() async throws {
        let nsd = try await NSDUpstream.start(zone: Self.zone, origin: "fwd.test")
        defer { nsd.stop() }
        try await withForwarder([nsd.endpoint]) { (forwarder) async throws in
            // As for a TCP client: the whole set.
            let full = try #require(decode(await resolveThrough(forwarder, queryMessage("big.fwd.test", .txt), limit: 65535).response))
            #expect(full.rcode == 0 && !full.tc && full.answer.count == 60)
            let statistics = forwarder.statistics
            #expect(statistics.upstreamQueries == 2 && statistics.upstreamTCPQueries == 1, "\(statistics)")
            // A UDP client gets TC from the cache, and retries over TCP.
            let udp = try #require(decode(await resolveThrough(forwarder, queryMessage("big.fwd.test", .txt, id: 5)).response))
            #expect(udp.tc && udp.answer.isEmpty && udp.qdcount == 1 && udp.ednsSize == 1232 && udp.id == 5)
            #expect(forwarder.statistics.upstreamQueries == 2)
        }
    }

    @Test func unreachableUpstreamsGiveServfailAtOnce() async throws {
        let closed = [try LoopbackPorts.free(), try LoopbackPorts.free()].map { IPv4Endpoint(address: IPv4Address("127.0.0.1")!, port: $0) }
        try await withForwarder(closed) { (forwarder) async throws in
            let (bytes, seconds) = await resolveThrough(forwarder, queryMessage("www.example.com", .a, id: 0x77))
            let response = try #require(decode(bytes))
            #expect(response.rcode == 2 && response.id == 0x77 && response.qdcount == 1 && response.ednsSize == 1232)
            #expect(seconds < 0.5, "both upstreams refuse at once; took \(seconds) s")
            #expect(forwarder.statistics.upstreamQueries == 2 && forwarder.statistics.failures == 1)
        }
    }

    @Test func aBlackHoleGivesServfailWithinTheDefaultBound() async throws {
        let hole = try FakeUpstream { _ in [] }
        defer { hole.stop() }
        try await withForwarder([hole.endpoint]) { (forwarder) async throws in
            let (bytes, seconds) = await resolveThrough(forwarder, queryMessage("www.example.com", .a, id: 0x99, edns: nil))
            let response = try #require(decode(bytes))
            #expect(response.rcode == 2 && response.id == 0x99 && response.ednsSize == nil)
            #expect(seconds >= 1.9 && seconds < 2.5, "SERVFAIL at the 2 s bound, took \(seconds) s")
            // Asked again (800 ms each) from a fresh port each time, with fresh IDs.
            let received = hole.received
            #expect(received.count == 3, "\(received.count) queries")
            #expect(Set(received.map(\.port)).count == received.count)
            #expect(Set(received.map { UInt16($0.query[0]) << 8 | UInt16($0.query[1]) }).count == received.count)
            #expect(forwarder.statistics.timeouts >= 2)
        }
    }

    @Test func aSilentUpstreamIsPassedForTheNext() async throws {
        let nsd = try await NSDUpstream.start(zone: Self.zone, origin: "fwd.test")
        defer { nsd.stop() }
        let hole = try FakeUpstream { _ in [] }
        defer { hole.stop() }
        let settings = ForwarderSettings(timeout: .seconds(1), attemptTimeout: .milliseconds(300))
        try await withForwarder([hole.endpoint, nsd.endpoint], settings: settings) { (forwarder) async throws in
            let (bytes, seconds) = await resolveThrough(forwarder, queryMessage("www.fwd.test", .a))
            #expect(try #require(decode(bytes)).answer == ["www.fwd.test. 300 IN A 192.0.2.10"])
            #expect(seconds >= 0.29 && seconds < 0.8, "took \(seconds) s")
            // The upstream that answered is asked first from now on.
            let (next, fast) = await resolveThrough(forwarder, queryMessage("two.fwd.test", .a))
            #expect(try #require(decode(next)).answer == ["two.fwd.test. 300 IN A 192.0.2.11"])
            #expect(fast < 0.25 && hole.received.count == 1)
            #expect(forwarder.statistics.timeouts == 1)
        }
    }

    @Test func aFailingUpstreamIsPassedForTheNext() async throws {
        let nsd = try await NSDUpstream.start(zone: Self.zone, origin: "fwd.test")
        defer { nsd.stop() }
        let failing = try FakeUpstream { query in [.init(bytes: FakeUpstream.response(to: query, rcode: 2))] }
        defer { failing.stop() }
        try await withForwarder([failing.endpoint, nsd.endpoint]) { (forwarder) async throws in
            let (bytes, seconds) = await resolveThrough(forwarder, queryMessage("three.fwd.test", .a))
            #expect(try #require(decode(bytes)).answer == ["three.fwd.test. 300 IN A 192.0.2.12"])
            #expect(seconds < 0.5 && failing.received.count == 1)
        }
    }

    @Test func onlyTheRightAnswerIsAccepted() async throws {
        let fake = try FakeUpstream { query in
            var wrongID = FakeUpstream.response(to: query, address: [6, 6, 6, 1])
            wrongID[0] ^= 0xFF
            return [
                .init(bytes: wrongID),
                .init(bytes: FakeUpstream.response(to: query, address: [6, 6, 6, 2], question: "evil.example.com")),
                .init(bytes: Array(FakeUpstream.response(to: query, address: [6, 6, 6, 3]).prefix(40))),  // cut short
                .init(bytes: FakeUpstream.response(to: query, address: [6, 6, 6, 4]), fromOtherPort: true),
                .init(bytes: FakeUpstream.response(to: query, address: [192, 0, 2, 99])),
                .init(bytes: FakeUpstream.response(to: query, address: [6, 6, 6, 5])),
            ]
        }
        defer { fake.stop() }
        try await withForwarder([fake.endpoint]) { (forwarder) async throws in
            let response = try #require(decode(await resolveThrough(forwarder, queryMessage("Spoof.Example.com", .a)).response))
            #expect(response.answer == ["Spoof.Example.com. 60 IN A 192.0.2.99"])
            // Wrong ID, wrong question, cut short; the other port's never got past the kernel.
            #expect(forwarder.statistics.ignored == 3, "\(forwarder.statistics)")
            #expect(fake.received.count == 1)
            // What went upstream: RD, the name in lower case, an OPT advertising 1232 with DO clear.
            let sent = try #require(fake.received.first?.query)
            let name = UpstreamWire.name("spoof.example.com")
            #expect(sent[2] == 0x01 && sent[3] == 0 && sent[5] == 1 && sent[11] == 1)
            #expect(Array(sent[12..<(12 + name.count)]) == name)
            #expect(Array(sent.suffix(11)) == [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0])
        }
    }

    @Test func theDOBitIsAskedForAndKeyedOn() async throws {
        let fake = try FakeUpstream { query in [.init(bytes: FakeUpstream.response(to: query, address: [192, 0, 2, 5]))] }
        defer { fake.stop() }
        try await withForwarder([fake.endpoint]) { (forwarder) async throws in
            _ = await resolveThrough(forwarder, queryMessage("signed.example.com", .a, edns: (1232, 0, true)))
            _ = await resolveThrough(forwarder, queryMessage("signed.example.com", .a, edns: (1232, 0, false)))
            _ = await resolveThrough(forwarder, queryMessage("signed.example.com", .a, edns: nil))
            let sent = fake.received.map(\.query)
            #expect(sent.count == 2 && sent[0][sent[0].count - 4] == 0x80 && sent[1][sent[1].count - 4] == 0)
            #expect(forwarder.statistics.cacheHits == 1)
        }
    }

    @Test func tooManyQuestionsInFlightGetServfailAtOnce() async throws {
        let slow = try FakeUpstream { query in [.init(bytes: FakeUpstream.response(to: query, address: [192, 0, 2, 8]), delay: 0.3)] }
        defer { slow.stop() }
        try await withForwarder([slow.endpoint], settings: ForwarderSettings(maxInFlight: 1)) { (forwarder) async throws in
            async let first = resolveThrough(forwarder, queryMessage("one.example.com", .a))
            try await Task.sleep(for: .milliseconds(50))
            let (bytes, seconds) = await resolveThrough(forwarder, queryMessage("other.example.com", .a))
            #expect(try #require(decode(bytes)).rcode == 2 && seconds < 0.1)
            #expect(try #require(decode(await first.response)).answer.count == 1)
            await forwarder.drain()
            #expect(forwarder.statistics.inFlight == 0 && forwarder.statistics.failures == 1)
        }
    }

    @Test func aClientPastItsShareGetsServfailWhileOthersAreForwarded() async throws {
        // The fake answers one query at a time: three upstream questions take 0.6 s of the 5 s.
        let slow = try FakeUpstream { query in [.init(bytes: FakeUpstream.response(to: query, address: [192, 0, 2, 9]), delay: 0.2)] }
        defer { slow.stop() }
        let flooder = IPv4Address("127.0.0.2")!, polite = IPv4Address("127.0.0.3")!
        let settings = ForwarderSettings(
            timeout: .seconds(5), attemptTimeout: .seconds(4), maxInFlight: 10, maxInFlightPerClient: 2)
        try await withForwarder([slow.endpoint], settings: settings) { (forwarder) async throws in
            async let first = resolveThrough(forwarder, queryMessage("r1.example.com", .a), client: flooder)
            async let second = resolveThrough(forwarder, queryMessage("r2.example.com", .a), client: flooder)
            // Wait until both hold their slots (a condition, not a time).
            let deadline = ContinuousClock.now + .seconds(30)
            while forwarder.statistics.inFlight < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            let (refused, _) = await resolveThrough(forwarder, queryMessage("r3.example.com", .a, id: 3), client: flooder)
            #expect(try #require(decode(refused)).rcode == 2)
            #expect(forwarder.statistics.refusedPerClient == 1 && forwarder.statistics.inFlight == 2)
            // Joining a question already upstream is free, and another client has its own share.
            async let joined = resolveThrough(forwarder, queryMessage("r1.example.com", .a, id: 4), client: flooder)
            let (answered, _) = await resolveThrough(forwarder, queryMessage("polite.example.com", .a, id: 5), client: polite)
            #expect(try #require(decode(answered)).answer.count == 1)
            for response in [await first.response, await second.response, await joined.response] {
                #expect(try #require(decode(response)).answer.count == 1)
            }
            await forwarder.drain()
            // Slots come back when the questions end.
            let (later, _) = await resolveThrough(forwarder, queryMessage("r4.example.com", .a), client: flooder)
            #expect(try #require(decode(later)).answer.count == 1)
            #expect(forwarder.statistics.refusedPerClient == 1 && forwarder.statistics.refusedInFlight == 0)
        }
    }

    @Test func onlyWrongAnswersGiveServfailWithinTheBound() async throws {
        let fake = try FakeUpstream { query in
            var wrongID = FakeUpstream.response(to: query, address: [6, 6, 6, 1])
            wrongID[1] ^= 0x01
            return [.init(bytes: wrongID), .init(bytes: FakeUpstream.response(to: query, address: [6, 6, 6, 2], question: "evil.example.com"))]
        }
        defer { fake.stop() }
        let settings = ForwarderSettings(timeout: .seconds(1), attemptTimeout: .milliseconds(400))
        try await withForwarder([fake.endpoint], settings: settings) { (forwarder) async throws in
            let (bytes, seconds) = await resolveThrough(forwarder, queryMessage("spoof.example.com", .a))
            #expect(try #require(decode(bytes)).rcode == 2)
            #expect(seconds >= 0.95 && seconds < 1.5, "took \(seconds) s")
            #expect(forwarder.statistics.ignored == 2 * fake.received.count && fake.received.count == 3)
        }
    }

    @Test func concurrentQuestionsShareOneUpstreamQuery() async throws {
        let slow = try FakeUpstream { query in [.init(bytes: FakeUpstream.response(to: query, address: [192, 0, 2, 7]), delay: 0.3)] }
        defer { slow.stop() }
        try await withForwarder([slow.endpoint]) { (forwarder) async throws in
            let clients = 20
            let responses = await withTaskGroup(of: (Int, [UInt8]).self) { group in
                for client in 0..<clients {
                    group.addTask {
                        let name = client % 2 == 0 ? "shared.example.com" : "SHARED.example.COM"
                        return (client, await resolveThrough(forwarder, queryMessage(name, .a, id: UInt16(1000 + client), edns: client % 3 == 0 ? nil : (1232, 0, false))).response)
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(responses.count == clients)
            for (client, bytes) in responses {
                let response = try #require(decode(bytes))
                #expect(response.id == UInt16(1000 + client) && response.rcode == 0)
                #expect(response.answer.first?.hasSuffix("60 IN A 192.0.2.7") == true)
                #expect((response.ednsSize == nil) == (client % 3 == 0))
            }
            #expect(slow.received.count == 1)
            let statistics = forwarder.statistics
            #expect(statistics.upstreamQueries == 1 && statistics.coalesced + statistics.cacheHits == clients - 1, "\(statistics)")
            #expect(statistics.coalesced > 0)
        }
    }
}

// MARK: - Harness

/// Runs `body` with a forwarder on its own event loops, then shuts them down.
func withForwarder(
    _ upstreams: [IPv4Endpoint], settings: ForwarderSettings = .init(), _ body: (Forwarder) async throws -> Void
) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var logger = Logger(label: "forwarder-test")
    logger.logLevel = .critical
    let forwarder = Forwarder(upstreams: upstreams, group: group, settings: settings, logger: logger)
    do {
        try await body(forwarder)
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    try await group.shutdownGracefully()
}

/// Resolves `message` and waits for the one reply (a second would trap the continuation).
/// `seconds`: from the call to the reply, timed where the reply is made (not when this task
/// resumes, which waits for a free thread of the pool other tests keep busy).
func resolveThrough(
    _ forwarder: Forwarder, _ message: [UInt8], limit: Int? = nil, client: IPv4Address? = nil
) async -> (response: [UInt8], seconds: Double) {
    let query = parsedQuery(message)!
    let start = ContinuousClock.now
    let (bytes, end): ([UInt8], ContinuousClock.Instant) = await withCheckedContinuation { continuation in
        forwarder.resolve(query, message: message, limit: limit ?? query.udpPayloadLimit, client: client) { buffer in
            continuation.resume(returning: (Array(buffer.readableBytesView), ContinuousClock.now))
        }
    }
    let elapsed = end - start
    return (bytes, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// 127.0.0.1:`port` as the socket calls want it.
func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

/// One UDP query to 127.0.0.1:`port` and its answer, or nil after `timeout` seconds.
func udpExchange(_ message: [UInt8], port: UInt16, timeout: Double) throws -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessFailure("socket: errno \(errno)") }
    defer { close(fd) }
    var address = loopback(port)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var watched = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&watched, 1, Int32(timeout * 1000)) == 1 else { return nil }
    var buffer = [UInt8](repeating: 0, count: 65535)
    let count = recv(fd, &buffer, buffer.count, 0)
    return count > 0 ? Array(buffer.prefix(count)) : nil
}

/// NSD serving one zone on a loopback port, in the foreground, stopped by pid.
final class NSDUpstream: Sendable {
    let process: Process
    let directory: URL
    let endpoint: IPv4Endpoint
    private let stopped = Atomic<Bool>(false)

    private init(process: Process, directory: URL, port: UInt16) {
        self.process = process
        self.directory = directory
        self.endpoint = IPv4Endpoint(address: IPv4Address("127.0.0.1")!, port: port)
    }

    static func start(zone: String, origin: String) async throws -> NSDUpstream {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zonelink-fwd-nsd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try LoopbackPorts.free()
        let zoneFile = directory.appendingPathComponent("zone")
        try zone.write(to: zoneFile, atomically: true, encoding: .utf8)
        let process = try NSD.launch(zones: [(origin: origin, file: zoneFile.path)], port: port, in: directory)
        let server = NSDUpstream(process: process, directory: directory, port: port)
        for attempt in 0..<200 {
            guard process.isRunning else { break }
            if let reply = try udpExchange(queryMessage(origin, .soa, id: UInt16(attempt), edns: nil), port: port, timeout: 0.1),
               reply.count > 12, reply[3] & 0x0F == 0, reply[7] > 0 {
                return server
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = NSD.logs(in: directory)
        server.stop()
        throw HarnessFailure("nsd did not serve \(origin) on 127.0.0.1:\(port): \(log)")
    }

    /// Stops NSD (`NSD.stop`) and removes its files; once only.
    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        NSD.stop(process)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// An upstream this test controls: a UDP socket on loopback and a thread that answers each
/// query with whatever `script` says (nothing, for a black hole).
final class FakeUpstream: Sendable {
    struct Reply: Sendable {
        var bytes: [UInt8]
        /// Seconds to wait before sending it.
        var delay: Double = 0
        /// Sent from another socket (another source port), as a spoofer would.
        var fromOtherPort = false
    }

    struct Received: Sendable {
        var query: [UInt8]
        var port: UInt16
    }

    let endpoint: IPv4Endpoint
    private let fd: Int32
    private let other: Int32
    private let done = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let log = Mutex<[Received]>([])

    var received: [Received] { log.withLock { $0 } }

    init(script: @escaping @Sendable ([UInt8]) -> [Reply]) throws {
        let fd = try Self.boundSocket()
        self.fd = fd
        other = try Self.boundSocket()
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        endpoint = IPv4Endpoint(address: IPv4Address("127.0.0.1")!, port: UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve(script) }
        thread.start()
    }

    func stop() {
        done.store(true, ordering: .relaxed)
        while !finished.load(ordering: .relaxed) { usleep(5_000) }
        close(fd)
        close(other)
    }

    private func serve(_ script: ([UInt8]) -> [Reply]) {
        defer { finished.store(true, ordering: .relaxed) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !done.load(ordering: .relaxed) {
            var watched = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&watched, 1, 50) == 1 else { continue }
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
            }
            guard count > 0 else { continue }
            let query = Array(buffer.prefix(count))
            log.withLock { $0.append(Received(query: query, port: UInt16(bigEndian: peer.sin_port))) }
            for reply in script(query) {
                if reply.delay > 0 { usleep(useconds_t(reply.delay * 1_000_000)) }
                _ = withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(reply.fromOtherPort ? other : fd, reply.bytes, reply.bytes.count, 0, $0, length)
                    }
                }
                usleep(20_000)
            }
        }
    }

    private static func boundSocket() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessFailure("socket: errno \(errno)") }
        var address = loopback(0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw HarnessFailure("bind: errno \(errno)") }
        return fd
    }

    /// A response to `query`: its ID, its question (or `question` instead), QR RD RA, `rcode`,
    /// and one A record (TTL 60) with `address`, when given and the rcode is NOERROR.
    static func response(to query: [UInt8], address: [UInt8]? = nil, rcode: UInt8 = 0, question: String? = nil) -> [UInt8] {
        var end = 12
        while end < query.count, query[end] != 0 { end += Int(query[end]) + 1 }
        end += 5
        let withAnswer = address != nil && rcode == 0
        var bytes = Array(query[0..<2]) + [0x81, 0x80 | rcode, 0, 1, 0, withAnswer ? 1 : 0, 0, 0, 0, 0]
        if let question {
            bytes += UpstreamWire.name(question) + query[(end - 4)..<end]
        } else {
            bytes += query[12..<end]
        }
        if withAnswer, let address { bytes += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4] + address }
        return bytes
    }
}
