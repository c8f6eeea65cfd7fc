import NIOCore
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// Response-rate limiting decided with explicit times: no clock, no sockets.
@Suite("Response-rate limiting")
struct ResponseRateLimiterTests {
    let responder: Responder
    init() throws { responder = Responder(engine: try makeEngine()) }

    func response(_ name: String, _ type: RRType = .a) -> [UInt8] {
        respond(responder, queryMessage(name, type))!
    }

    static func at(_ milliseconds: Int) -> Duration { .milliseconds(milliseconds) }

    static let client = IPv4Address("10.1.2.3")!

    func classOf(_ bytes: [UInt8]) -> ResponseClass { bytes.withUnsafeBytes { ResponseClass.of($0) } }

    /// Decisions for `count` copies of `bytes` from `source`, all at `time`.
    static func decide(
        _ limiter: inout ResponseRateLimiter, _ bytes: [UInt8], count: Int, from source: IPv4Address = client, at time: Duration
    ) -> [ResponseRateLimiter.Decision] {
        (0..<count).map { _ in bytes.withUnsafeBytes { limiter.decide($0, to: source, at: time) } }
    }

    @Test func answersPastTheRateAreLimitedUntilCreditReturns() {
        var limiter = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 10, slip: 0))
        let answer = response("www.example.internal")
        #expect(Self.decide(&limiter, answer, count: 10, at: Self.at(0)).allSatisfy { $0 == .send })
        #expect(Self.decide(&limiter, answer, count: 5, at: Self.at(0)).allSatisfy { $0 == .drop })
        // A tenth of a second buys one answer back.
        #expect(Self.decide(&limiter, answer, count: 2, at: Self.at(100)) == [.send, .drop])
        // A whole second fills the bucket again, but never above one second's worth.
        #expect(Self.decide(&limiter, answer, count: 11, at: Self.at(5_000)).filter { $0 == .send }.count == 10)
    }

    @Test func everySlipthLimitedAnswerSlips() {
        var limiter = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 5, slip: 2))
        let answer = response("www.example.internal")
        #expect(Self.decide(&limiter, answer, count: 5, at: Self.at(0)).allSatisfy { $0 == .send })
        #expect(Self.decide(&limiter, answer, count: 6, at: Self.at(0)) == [.drop, .slip, .drop, .slip, .drop, .slip])
        var every3 = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 1, slip: 3))
        #expect(Self.decide(&every3, answer, count: 7, at: Self.at(0)) == [.send, .drop, .drop, .slip, .drop, .drop, .slip])
        var never = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 1, slip: 0))
        #expect(Self.decide(&never, answer, count: 5, at: Self.at(0)) == [.send, .drop, .drop, .drop, .drop])
    }

    @Test func sourcesInOnePrefixShareTheirLimit() {
        let answer = response("www.example.internal")
        var by24 = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 3, slip: 0, ipv4PrefixLength: 24))
        #expect(Self.decide(&by24, answer, count: 3, from: IPv4Address("10.1.2.3")!, at: Self.at(0)).allSatisfy { $0 == .send })
        #expect(Self.decide(&by24, answer, count: 1, from: IPv4Address("10.1.2.250")!, at: Self.at(0)) == [.drop])
        #expect(Self.decide(&by24, answer, count: 3, from: IPv4Address("10.1.3.3")!, at: Self.at(0)).allSatisfy { $0 == .send })
        var by32 = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 3, slip: 0, ipv4PrefixLength: 32))
        #expect(Self.decide(&by32, answer, count: 3, from: IPv4Address("10.1.2.3")!, at: Self.at(0)).allSatisfy { $0 == .send })
        #expect(Self.decide(&by32, answer, count: 1, from: IPv4Address("10.1.2.4")!, at: Self.at(0)) == [.send])
    }

    @Test func answersAreClassedByNameAndTypeNXDOMAINByZoneErrorsTogether() throws {
        var limiter = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 2, slip: 0))
        // Another name or type is another class.
        #expect(Self.decide(&limiter, response("www.example.internal"), count: 3, at: Self.at(0)) == [.send, .send, .drop])
        #expect(Self.decide(&limiter, response("WWW.example.internal"), count: 1, at: Self.at(0)) == [.drop])
        #expect(Self.decide(&limiter, response("www.example.internal", .aaaa), count: 1, at: Self.at(0)) == [.send])
        #expect(Self.decide(&limiter, response("big.example.internal"), count: 1, at: Self.at(0)) == [.send])
        // Random names under one zone: one class, the zone's.
        let nxdomains = (0..<3).map { response("random\($0).example.internal") }
        #expect(nxdomains.map { classOf($0) }.allSatisfy { $0 == .nxdomain(zone: DNSName("example.internal")!.wire) })
        #expect(nxdomains.flatMap { Self.decide(&limiter, $0, count: 1, at: Self.at(0)) } == [.send, .send, .drop])
        // Every error is one class.
        let refused = try #require(respond(responder, queryMessage("www.example.internal", .a, qclass: 3)))
        let formerr: [UInt8] = try #require(respond(responder, Array(queryMessage("www.example.internal", .a).prefix(20))))
        #expect(classOf(refused) == .error && classOf(formerr) == .error)
        #expect([refused, formerr, refused].flatMap { Self.decide(&limiter, $0, count: 1, at: Self.at(0)) } == [.send, .send, .drop])
    }

    @Test func hashingInPlaceAgreesWithTheClass() throws {
        let refused = try #require(respond(responder, queryMessage("www.example.internal", .a, qclass: 3)))
        for bytes in [response("WWW.Example.internal"), response("big.example.internal"), response("x.nope.example.internal"),
                      response("api.example.internal"), refused] {
            bytes.withUnsafeBytes { raw in
                #expect(ResponseClass.hash(of: raw, seed: 42) == ResponseClass.of(raw).hash(seed: 42))
            }
        }
    }

    @Test func theTableNeverGrows() {
        var limiter = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 1, slip: 0), capacity: 64)
        #expect(limiter.capacity == 64)
        var sent = 0
        for name in 0..<5_000 {
            let decision = response("n\(name).example.internal", .txt).withUnsafeBytes {
                limiter.decide($0, to: IPv4Address(UInt32(0x0A00_0000) + UInt32(name) << 8), at: Self.at(0))
            }
            if decision == .send { sent += 1 }
        }
        // New keys take a bucket over: first answers of each still go out.
        #expect(limiter.capacity == 64 && sent == 5_000)
    }

    @Test func zeroResponsesPerSecondLimitsNothing() {
        var limiter = ResponseRateLimiter(settings: DNSRateLimit(responsesPerSecond: 0))
        #expect(Self.decide(&limiter, response("www.example.internal"), count: 10_000, at: Self.at(0)).allSatisfy { $0 == .send })
    }

    @Test func aSlippedAnswerIsTheQuestionWithTC() throws {
        let original = response("big.example.internal", .a)
        var buffer = ByteBuffer(bytes: original)
        ResponseRateLimiter.truncate(&buffer)
        let slipped = try #require(decode(Array(buffer.readableBytesView)))
        #expect(slipped.tc && slipped.qdcount == 1 && slipped.answer.isEmpty && slipped.authority.isEmpty && slipped.additional.isEmpty)
        #expect(buffer.readableBytes == 12 + DNSName("big.example.internal")!.wire.count + 4)
        #expect(Array(buffer.readableBytesView.prefix(2)) == Array(original.prefix(2)))
        var header = ByteBuffer(bytes: Array(original.prefix(12)) + [0xFF])
        ResponseRateLimiter.truncate(&header)
        #expect(header.readableBytes == 12 && header.getInteger(at: 2, as: UInt8.self)! & 0x02 != 0)
    }
}
