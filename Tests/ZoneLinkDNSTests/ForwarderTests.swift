import NIOCore
import Testing
import ZoneLinkTestSupport
import ZoneLinkCore
@testable import ZoneLinkDNS

/// Upstream responses built by hand, as an upstream resolver would send them.
enum UpstreamWire {
    struct Record {
        var owner: [UInt8] = [0xC0, 12]  // a pointer to the question name
        var type: RRType
        var ttl: UInt32
        var rdata: [UInt8]
        var rclass: UInt16 = DNSClass.internet

        static func a(_ address: String, ttl: UInt32, owner: [UInt8] = [0xC0, 12]) -> UpstreamRecord {
            Record(owner: owner, type: .a, ttl: ttl, rdata: address.split(separator: ".").map { UInt8($0)! })
        }

        static func cname(_ target: String, ttl: UInt32) -> UpstreamRecord {
            Record(type: .cname, ttl: ttl, rdata: name(target))
        }

        /// `owner SOA ns. host. 1 3600 600 86400 minimum`.
        static func soa(owner: [UInt8], ttl: UInt32, minimum: UInt32) -> UpstreamRecord {
            var rdata = name("ns.") + name("host.")
            for field in [1, 3600, 600, 86400, minimum] as [UInt32] { rdata += be32(field) }
            return Record(owner: owner, type: .soa, ttl: ttl, rdata: rdata)
        }

        static func opt(size: UInt16 = 1232, extendedRcode: UInt8 = 0, dnssecOK: Bool = false) -> UpstreamRecord {
            Record(owner: [0], type: .opt, ttl: UInt32(extendedRcode) << 24 | (dnssecOK ? 0x8000 : 0), rdata: [], rclass: size)
        }

        var bytes: [UInt8] { owner + be16(type.rawValue) + be16(rclass) + be32(ttl) + be16(UInt16(rdata.count)) + rdata }
    }

    static func name(_ text: String) -> [UInt8] { DNSName(text)!.wire }
    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func be32(_ value: UInt32) -> [UInt8] { be16(UInt16(value >> 16)) + be16(UInt16(value & 0xFFFF)) }

    /// A response to `query` (its ID and question as the upstream got them, unless overridden).
    static func response(
        id: UInt16, question: String, type: RRType, flags: UInt16 = HeaderFlags.qr | HeaderFlags.rd | HeaderFlags.ra,
        rcode: UInt16 = 0, answer: [UpstreamRecord] = [], authority: [UpstreamRecord] = [], additional: [UpstreamRecord] = []
    ) -> [UInt8] {
        var bytes = be16(id) + be16(flags | rcode) + be16(1) + be16(UInt16(answer.count)) + be16(UInt16(authority.count))
            + be16(UInt16(additional.count))
        for label in question.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += label.utf8
        }
        bytes += [0] + be16(type.rawValue) + be16(DNSClass.internet)
        for record in answer + authority + additional { bytes += record.bytes }
        return bytes
    }
}

/// Reads `bytes` as the upstream's answer to (`id`, `key`).
func readUpstream(
    _ bytes: [UInt8], id: UInt16, key: ForwardKey, overTCP: Bool = false, maxTTL: UInt32 = 3600,
    now: NIODeadline = .uptimeNanoseconds(1_000_000_000_000)
) -> UpstreamMessage.Reading {
    bytes.withUnsafeBytes { UpstreamMessage.read($0, id: id, key: key, overTCP: overTCP, maxTTL: maxTTL, now: now) }
}

func forwardedAnswer(_ reading: UpstreamMessage.Reading) -> ForwardedAnswer? {
    if case .answer(let answer) = reading { return answer }
    return nil
}

/// The response `answer` gives the client whose query is `message`, at `now`.
func servedResponse(_ answer: ForwardedAnswer, to message: [UInt8], at now: NIODeadline, limit: Int? = nil) -> [UInt8] {
    let query = parsedQuery(message)!
    var output = ByteBuffer()
    message.withUnsafeBytes { answer.write(to: query, message: $0, now: now, limit: limit ?? query.udpPayloadLimit, into: &output) }
    return Array(output.readableBytesView)
}

let epoch = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

func fwdKey(_ name: String, _ type: RRType = .a, dnssecOK: Bool = false) -> ForwardKey {
    ForwardKey(name: DNSName(name)!, type: type.rawValue, qclass: DNSClass.internet, dnssecOK: dnssecOK)
}

@Suite("Forwarder: cache keys and TTL arithmetic")
struct ForwarderPolicyTests {
    @Test func keysIgnoreCaseButNotTypeClassOrDO() throws {
        let upper = ForwardKey(try #require(parsedQuery(queryMessage("WwW.Example.COM", .a, id: 1))))
        let lower = ForwardKey(try #require(parsedQuery(queryMessage("www.example.com", .a, id: 2, edns: nil))))
        #expect(upper == lower && upper.hashValue == lower.hashValue)
        #expect(upper.name.wire == DNSName("www.example.com")!.wire)
        let withDO = ForwardKey(try #require(parsedQuery(queryMessage("www.example.com", .a, edns: (1232, 0, true)))))
        #expect(withDO != lower && withDO.dnssecOK)
        #expect(ForwardKey(try #require(parsedQuery(queryMessage("www.example.com", .aaaa)))) != lower)
        #expect(ForwardKey(try #require(parsedQuery(queryMessage("www.example.com", .a, qclass: 3)))) != lower)
    }

    @Test func positiveAnswersLiveForTheLeastAnswerTTLCappedByMaxTTL() {
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [300, 60, 900], soa: nil, maxTTL: 3600) == 60)
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [86400], soa: nil, maxTTL: 3600) == 3600)
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [0, 300], soa: nil, maxTTL: 3600) == 0)
        // RFC 2181 section 8: the top bit set reads as zero.
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [0x8000_0001], soa: nil, maxTTL: 3600) == 0)
        // A SOA in authority beside answers: NODATA at the end of a CNAME chain, negative too.
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [120], soa: (3600, 5), maxTTL: 3600) == 5)
    }

    @Test func negativeAnswersLiveForTheSOANegativeTTL() {
        #expect(CachePolicy.negativeTTL(soaTTL: 3600, soaMinimum: 300) == 300)
        #expect(CachePolicy.negativeTTL(soaTTL: 60, soaMinimum: 300) == 60)
        #expect(CachePolicy.lifetime(rcode: .nxDomain, answerTTLs: [], soa: (3600, 300), maxTTL: 3600) == 300)
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [], soa: (45, 300), maxTTL: 3600) == 45)  // NODATA
        #expect(CachePolicy.lifetime(rcode: .nxDomain, answerTTLs: [], soa: (86400, 86400), maxTTL: 3600) == 3600)
        // CNAME to a name that does not exist: the CNAME's TTL bounds it too.
        #expect(CachePolicy.lifetime(rcode: .nxDomain, answerTTLs: [20], soa: (3600, 300), maxTTL: 3600) == 20)
        // No SOA, no negative caching (RFC 2308 section 5); referrals are NOERROR without SOA.
        #expect(CachePolicy.lifetime(rcode: .nxDomain, answerTTLs: [], soa: nil, maxTTL: 3600) == 0)
        #expect(CachePolicy.lifetime(rcode: .noError, answerTTLs: [], soa: nil, maxTTL: 3600) == 0)
    }

    @Test func failuresAreNotCached() {
        for rcode in [RCode.servFail, .refused, .formErr, .notImp, .badVers] {
            #expect(CachePolicy.lifetime(rcode: rcode, answerTTLs: [300], soa: (300, 300), maxTTL: 3600) == 0)
        }
    }

    @Test func servedTTLsCountDownFromReceiptInWholeSeconds() throws {
        let response = UpstreamWire.response(
            id: 7, question: "www.example.com", type: .a,
            answer: [.a("192.0.2.1", ttl: 300), .a("192.0.2.2", ttl: 100_000)],
            authority: [UpstreamRecord(owner: UpstreamWire.name("example.com"), type: .ns, ttl: 30, rdata: UpstreamWire.name("ns.example.com"))])
        let answer = try #require(forwardedAnswer(readUpstream(response, id: 7, key: fwdKey("www.example.com"), maxTTL: 3600)))
        #expect(answer.lifetime == 300)
        #expect(answer.servedTTLs(at: epoch) == [300, 3600, 30])
        #expect(answer.servedTTLs(at: epoch + .milliseconds(999)) == [300, 3600, 30])
        #expect(answer.servedTTLs(at: epoch + .milliseconds(10_500)) == [290, 3590, 20])
        #expect(answer.servedTTLs(at: epoch + .seconds(45)) == [255, 3555, 0])  // never below zero
        #expect(answer.servedTTLs(at: epoch - .seconds(5)) == [300, 3600, 30])
    }

    @Test func negativeAnswersServeTheSOAWithTheNegativeTTL() throws {
        let soa = UpstreamWire.Record.soa(owner: UpstreamWire.name("example.com"), ttl: 3600, minimum: 120)
        let nx = UpstreamWire.response(id: 9, question: "nope.example.com", type: .a, rcode: 3, authority: [soa])
        let answer = try #require(forwardedAnswer(readUpstream(nx, id: 9, key: fwdKey("nope.example.com"))))
        #expect(answer.lifetime == 120 && answer.isNegative && answer.rcode == .nxDomain)
        #expect(answer.servedTTLs(at: epoch + .seconds(20)) == [100])
        let nodata = UpstreamWire.response(id: 9, question: "www.example.com", type: .aaaa, authority: [soa])
        let empty = try #require(forwardedAnswer(readUpstream(nodata, id: 9, key: fwdKey("www.example.com", .aaaa))))
        #expect(empty.lifetime == 120 && empty.isNegative && empty.rcode == .noError)
        let bare = UpstreamWire.response(id: 9, question: "nope.example.com", type: .a, rcode: 3)
        #expect(try #require(forwardedAnswer(readUpstream(bare, id: 9, key: fwdKey("nope.example.com")))).lifetime == 0)
    }
}

@Suite("Forwarder: reading upstream answers")
struct UpstreamMessageTests {
    let good = UpstreamWire.response(id: 0xBEEF, question: "www.example.com", type: .a, answer: [.a("192.0.2.1", ttl: 60)])

    @Test func acceptsOnlyTheAnswerToTheQuerySent() {
        let k = fwdKey("www.example.com")
        #expect(forwardedAnswer(readUpstream(good, id: 0xBEEF, key: k)) != nil)
        // Another ID, question, type or class; a query; another opcode: ignored.
        #expect(readUpstream(good, id: 0xBEEE, key: k).isIgnored)
        #expect(readUpstream(good, id: 0xBEEF, key: fwdKey("www.example.org")).isIgnored)
        #expect(readUpstream(good, id: 0xBEEF, key: fwdKey("ww.example.com")).isIgnored)
        #expect(readUpstream(good, id: 0xBEEF, key: fwdKey("www.example.com", .aaaa)).isIgnored)
        #expect(readUpstream(good, id: 0xBEEF, key: fwdKey("www.example.com", dnssecOK: true)) .isAnswer)
        var chaos = good
        chaos[12 + 17 + 3] = 3
        #expect(readUpstream(chaos, id: 0xBEEF, key: k).isIgnored)
        var query = good
        query[2] &= 0x7F
        #expect(readUpstream(query, id: 0xBEEF, key: k).isIgnored)
        var notify = good
        notify[2] |= 4 << 3
        #expect(readUpstream(notify, id: 0xBEEF, key: k).isIgnored)
        // The name in another case is the same question (an upstream may echo 0x20 case).
        let mixed = UpstreamWire.response(id: 0xBEEF, question: "WWW.example.COM", type: .a, answer: [.a("192.0.2.1", ttl: 60)])
        #expect(readUpstream(mixed, id: 0xBEEF, key: k).isAnswer)
    }

    @Test func truncatedAnswersAskForTCPAndFailuresMoveOn() {
        let k = fwdKey("www.example.com")
        let tc = UpstreamWire.response(id: 1, question: "www.example.com", type: .a, flags: HeaderFlags.qr | HeaderFlags.tc)
        guard case .truncated = readUpstream(tc, id: 1, key: k) else { Issue.record("TC over UDP should ask for TCP"); return }
        // A TC answer may be cut anywhere after the question.
        guard case .truncated = readUpstream(tc + [0xC0, 12, 0], id: 1, key: k) else { Issue.record("cut TC"); return }
        guard case .unusable = readUpstream(tc, id: 1, key: k, overTCP: true) else { Issue.record("TC over TCP"); return }
        for rcode: UInt16 in [1, 2, 4, 5] {
            let failed = UpstreamWire.response(id: 1, question: "www.example.com", type: .a, rcode: rcode)
            guard case .unusable = readUpstream(failed, id: 1, key: k) else { Issue.record("rcode \(rcode) should be unusable"); return }
        }
        let badvers = UpstreamWire.response(id: 1, question: "www.example.com", type: .a, additional: [.opt(extendedRcode: 1)])
        guard case .unusable("BADVERS") = readUpstream(badvers, id: 1, key: k) else { Issue.record("BADVERS"); return }
    }

    @Test func theUpstreamOPTAndWhatFollowsItAreCut() throws {
        let glue = UpstreamWire.Record.a("192.0.2.53", ttl: 60, owner: UpstreamWire.name("ns.example.com"))
        let response = UpstreamWire.response(
            id: 3, question: "www.example.com", type: .a, answer: [.a("192.0.2.1", ttl: 60)],
            additional: [glue, .opt(size: 4096, dnssecOK: true), glue])
        let answer = try #require(forwardedAnswer(readUpstream(response, id: 3, key: fwdKey("www.example.com"))))
        #expect(answer.additionalEnds.count == 1 && answer.ttlOffsets.count == 2)
        #expect(answer.message.count == response.count - 11 - glue.bytes.count)
        // OPT elsewhere than in the additional section is malformed.
        let misplaced = UpstreamWire.response(id: 3, question: "www.example.com", type: .a, answer: [.opt()])
        #expect(readUpstream(misplaced, id: 3, key: fwdKey("www.example.com")).isIgnored)
    }

    @Test func neverTrapsOnMalformedAnswers() {
        let k = fwdKey("www.example.com")
        let seeds = [
            good,
            UpstreamWire.response(
                id: 0xBEEF, question: "www.example.com", type: .a, rcode: 3,
                answer: [.cname("x.example.com", ttl: 5)],
                authority: [.soa(owner: UpstreamWire.name("example.com"), ttl: 60, minimum: 30)], additional: [.opt()]),
        ]
        var rng = SplitMix64(seed: 5)
        var answers = 0
        for i in 0..<40_000 {
            var bytes = seeds[i % 2]
            switch i % 3 {
            case 0: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            case 1: for _ in 0..<(1 + rng.next() % 4) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            default: bytes += (0..<(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            if let answer = forwardedAnswer(readUpstream(bytes, id: 0xBEEF, key: k)) {
                answers += 1
                // Whatever was accepted can be served without trapping.
                _ = servedResponse(answer, to: queryMessage("WWW.example.com", .a), at: epoch, limit: 512)
            }
        }
        #expect(answers > 100)
    }
}

extension UpstreamMessage.Reading {
    var isIgnored: Bool { if case .ignored = self { true } else { false } }
    var isAnswer: Bool { if case .answer = self { true } else { false } }
}

typealias UpstreamRecord = UpstreamWire.Record

@Suite("Forwarder: responses to clients")
struct ForwardedResponseTests {
    @Test func carriesTheClientsIDQuestionAndCaseWithAAClear() throws {
        let upstream = UpstreamWire.response(
            id: 0x4242, question: "www.example.com", type: .a,
            flags: HeaderFlags.qr | HeaderFlags.aa | HeaderFlags.rd | HeaderFlags.ra,
            answer: [.a("192.0.2.1", ttl: 300)], additional: [.opt()])
        let answer = try #require(forwardedAnswer(readUpstream(upstream, id: 0x4242, key: fwdKey("www.example.com"))))
        let message = queryMessage("WwW.ExAmple.COM", .a, id: 0x0101, flags: HeaderFlags.rd | HeaderFlags.cd, edns: nil)
        let bytes = servedResponse(answer, to: message, at: epoch + .seconds(3))
        #expect(Array(bytes[12..<(12 + 17 + 4)]) == Array(message[12..<(12 + 17 + 4)]))
        let response = try #require(decode(bytes))
        #expect(response.id == 0x0101 && response.rcode == 0 && !response.aa && !response.tc)
        #expect(response.answer == ["WwW.ExAmple.COM. 297 IN A 192.0.2.1"])
        #expect(response.ednsSize == nil && response.additional.isEmpty)
        let flags = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        #expect(flags & HeaderFlags.ra != 0 && flags & HeaderFlags.rd != 0 && flags & HeaderFlags.cd != 0 && flags & HeaderFlags.qr != 0)
        // A client without RD gets RD clear; RA still says what the upstream offers.
        let noRD = servedResponse(answer, to: queryMessage("www.example.com", .a, flags: 0, edns: nil), at: epoch)
        #expect(noRD[2] & 0x01 == 0 && noRD[3] & 0x80 != 0)
    }

    @Test func ednsGoesBackExactlyWhenTheClientSentIt() throws {
        let upstream = UpstreamWire.response(
            id: 1, question: "www.example.com", type: .a, flags: HeaderFlags.qr | HeaderFlags.ra | HeaderFlags.ad,
            answer: [.a("192.0.2.1", ttl: 300)], additional: [.opt(size: 4096, dnssecOK: true)])
        let answer = try #require(forwardedAnswer(readUpstream(upstream, id: 1, key: fwdKey("www.example.com", dnssecOK: true))))
        let withDO = try #require(decode(servedResponse(answer, to: queryMessage("www.example.com", .a, edns: (4096, 0, true)), at: epoch)))
        #expect(withDO.ednsSize == 1232 && withDO.ednsDO && withDO.additional.isEmpty)
        let plain = servedResponse(answer, to: queryMessage("www.example.com", .a, edns: (1232, 0, false)), at: epoch)
        let decoded = try #require(decode(plain))
        #expect(decoded.ednsSize == 1232 && !decoded.ednsDO)
        #expect(plain[3] & 0x20 == 0, "AD only for clients that sent DO or AD")
        #expect(servedResponse(answer, to: queryMessage("www.example.com", .a, edns: (1232, 0, true)), at: epoch)[3] & 0x20 != 0)
        #expect(try #require(decode(servedResponse(answer, to: queryMessage("www.example.com", .a, edns: nil), at: epoch))).ednsSize == nil)
    }

    @Test func tooLargeDropsAdditionalThenTruncates() throws {
        let answers = (1...20).map { UpstreamRecord.a("192.0.2.\($0)", ttl: 60) }
        let glue = (1...20).map { UpstreamRecord.a("198.51.100.\($0)", ttl: 60, owner: UpstreamWire.name("ns\($0).example.com")) }
        let upstream = UpstreamWire.response(id: 1, question: "www.example.com", type: .a, answer: answers, additional: glue)
        let answer = try #require(forwardedAnswer(readUpstream(upstream, id: 1, key: fwdKey("www.example.com"))))
        let header = 12 + 17 + 4
        let answersSize = 20 * 16
        // Everything fits over TCP.
        let full = try #require(decode(servedResponse(answer, to: queryMessage("www.example.com", .a), at: epoch, limit: 65535)))
        #expect(full.answer.count == 20 && full.additional.count == 20 && !full.tc)
        // Room for the answers, the OPT and three glue records.
        let limit = header + answersSize + 11 + 3 * 32 + 10
        let some = servedResponse(answer, to: queryMessage("www.example.com", .a), at: epoch, limit: limit)
        let partial = try #require(decode(some))
        #expect(partial.answer.count == 20 && partial.additional.count == 3 && !partial.tc && some.count <= limit)
        // Not even the answers fit: TC, the question and the OPT.
        let cut = servedResponse(answer, to: queryMessage("www.example.com", .a), at: epoch, limit: 300)
        let truncated = try #require(decode(cut))
        #expect(truncated.tc && truncated.answer.isEmpty && truncated.additional.isEmpty && truncated.qdcount == 1)
        #expect(truncated.ednsSize == 1232 && cut.count == header + 11)
        // No OPT: 512 bytes, which the answers fit with some glue.
        let plain = servedResponse(answer, to: queryMessage("www.example.com", .a, edns: nil), at: epoch)
        let noEDNS = try #require(decode(plain))
        #expect(!noEDNS.tc && noEDNS.answer.count == 20 && noEDNS.additional.count == 5 && noEDNS.ednsSize == nil && plain.count <= 512)
    }

    @Test func negativeAnswersKeepTheirRcodeAndSOA() throws {
        let soa = UpstreamRecord.soa(owner: UpstreamWire.name("example.com"), ttl: 3600, minimum: 120)
        let upstream = UpstreamWire.response(id: 1, question: "nope.example.com", type: .a, rcode: 3, authority: [soa])
        let answer = try #require(forwardedAnswer(readUpstream(upstream, id: 1, key: fwdKey("nope.example.com"))))
        let response = try #require(decode(servedResponse(answer, to: queryMessage("NOPE.example.com", .a), at: epoch + .seconds(30))))
        #expect(response.rcode == 3 && response.answer.isEmpty && !response.aa)
        #expect(response.authority == ["example.com. 90 IN SOA ns. host. 1 3600 600 86400 120"])
    }
}

@Suite("Forwarder: the cache")
struct AnswerCacheTests {
    func entry(_ ttl: UInt32, at time: NIODeadline = epoch) -> ForwardedAnswer {
        let response = UpstreamWire.response(id: 1, question: "x.test", type: .a, answer: [.a("192.0.2.1", ttl: ttl)])
        return forwardedAnswer(readUpstream(response, id: 1, key: fwdKey("x.test"), now: time))!
    }

    @Test func entriesExpireWithTheirLifetime() {
        var cache = AnswerCache(capacity: 10)
        cache.insert(fwdKey("a.test"), entry(30), now: epoch)
        #expect(cache.lookup(fwdKey("A.TEST"), now: epoch + .seconds(29)) != nil)
        #expect(cache.lookup(fwdKey("a.test"), now: epoch + .seconds(30)) == nil)
        #expect(cache.count == 0 && cache.hits == 1)
        // Nothing with no lifetime, or received so long ago it has expired.
        cache.insert(fwdKey("b.test"), entry(0), now: epoch)
        cache.insert(fwdKey("c.test"), entry(10, at: epoch), now: epoch + .seconds(11))
        #expect(cache.count == 0)
    }

    @Test func theLeastRecentlyUsedEntryIsEvicted() {
        var cache = AnswerCache(capacity: 3)
        for name in ["a", "b", "c"] { cache.insert(fwdKey("\(name).test"), entry(300), now: epoch) }
        #expect(cache.keysByRecency == [fwdKey("c.test"), fwdKey("b.test"), fwdKey("a.test")])
        _ = cache.lookup(fwdKey("a.test"), now: epoch)  // a is now the most recently used: b goes next
        cache.insert(fwdKey("d.test"), entry(300), now: epoch)
        #expect(cache.count == 3 && cache.evictions == 1)
        #expect(cache.lookup(fwdKey("b.test"), now: epoch) == nil)
        #expect(cache.keysByRecency == [fwdKey("d.test"), fwdKey("a.test"), fwdKey("c.test")])
        // Replacing an entry does not evict.
        cache.insert(fwdKey("c.test"), entry(600), now: epoch)
        #expect(cache.count == 3 && cache.evictions == 1 && cache.keysByRecency.first == fwdKey("c.test"))
        #expect(cache.lookup(fwdKey("c.test"), now: epoch + .seconds(400)) != nil)
        // Slots are reused: a long run stays within capacity.
        for i in 0..<1000 { cache.insert(fwdKey("n\(i).test"), entry(300), now: epoch) }
        #expect(cache.count == 3 && cache.keysByRecency == [fwdKey("n999.test"), fwdKey("n998.test"), fwdKey("n997.test")])
        cache.removeAll()
        #expect(cache.count == 0 && cache.keysByRecency.isEmpty)
    }

    @Test func theForwarderCacheIsBounded() throws {
        // The shards split the bound; a flood of names keeps the total near it.
        let forwarder = Forwarder(
            upstreams: [], group: NIOSingletons.posixEventLoopGroup, settings: ForwarderSettings(cacheSize: 160),
            logger: .init(label: "test"))
        for i in 0..<2000 {
            forwarder.complete(fwdKey("n\(i).test"), with: entry(300, at: .now()))
        }
        let statistics = forwarder.statistics
        #expect(statistics.cacheEntries <= 160 && statistics.cacheEntries > 100)
        #expect(statistics.cacheEvictions == 2000 - statistics.cacheEntries)
    }

    @Test func aCachedAnswerIsServedWithoutUpstreams() throws {
        let forwarder = Forwarder(upstreams: [], group: NIOSingletons.posixEventLoopGroup, logger: .init(label: "test"))
        let upstream = UpstreamWire.response(id: 1, question: "www.example.com", type: .a, answer: [.a("192.0.2.1", ttl: 300)])
        forwarder.complete(fwdKey("www.example.com"), with: forwardedAnswer(readUpstream(upstream, id: 1, key: fwdKey("www.example.com"), now: .now())))
        let message = queryMessage("WWW.example.com", .a, id: 77)
        let query = try #require(parsedQuery(message))
        var output = ByteBuffer()
        let hit = message.withUnsafeBytes { forwarder.answerFromCache(query, message: $0, limit: query.udpPayloadLimit, into: &output) }
        #expect(hit)
        let response = try #require(decode(Array(output.readableBytesView)))
        #expect(response.id == 77 && response.answer.count == 1 && response.answer[0].hasPrefix("WWW.example.com. 300 IN A"))
        let miss = try #require(parsedQuery(queryMessage("www.example.com", .aaaa)))
        #expect(!message.withUnsafeBytes { forwarder.answerFromCache(miss, message: $0, limit: 512, into: &output) })
        #expect(forwarder.statistics.cacheHits == 1)
    }
}
