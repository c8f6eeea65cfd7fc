import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

@Suite("Responses on the wire")
struct ResponderTests {
    let responder: Responder
    init() throws { responder = Responder(engine: try makeEngine()) }

    @Test func answerIsAuthoritativeAndCompressed() throws {
        let bytes = try #require(respond(responder, queryMessage("EP-AFF.epsrv-aff.\(suffix)", .a), vpc: "vpc-1", zone: "eu-central-1a"))
        let response = try #require(decode(bytes))
        #expect(response.rcode == 0 && response.aa && !response.tc && response.id == 0x1234)
        #expect(response.answer == ["EP-AFF.epsrv-aff.eu-central-1.privatelink.internal. 60 IN A 10.10.1.10"])
        #expect(response.ednsSize == 1232)
        // Header 12 + question 56 + answer (pointer 2 + 10 + 4) + OPT 11.
        #expect(bytes.count == 12 + 56 + 16 + 11)
    }

    @Test func tooLargeForTheClientIsTruncated() throws {
        let small = try #require(decode(respond(responder, queryMessage("big.example.internal", .a, edns: nil))!))
        #expect(small.tc && small.answer.isEmpty && small.qdcount == 1)
        let large = try #require(decode(respond(responder, queryMessage("big.example.internal", .a, edns: (4096, 0, false)))!))
        #expect(!large.tc && large.answer.count == 40)
        let tcp = try #require(decode(respond(responder, queryMessage("big.example.internal", .a, edns: nil), transport: .tcp)!))
        #expect(!tcp.tc && tcp.answer.count == 40)
    }

    @Test func nxdomainHasTheSOA() throws {
        let response = try #require(decode(respond(responder, queryMessage("nope.example.internal", .a))!))
        #expect(response.rcode == 3 && response.aa)
        #expect(response.authority.first?.hasPrefix("example.internal. 300 IN SOA ns1.example.internal.") == true)
    }

    @Test func dnssecOKIsEchoedAndUnknownVersionsGetBADVERS() throws {
        let echoed = try #require(decode(respond(responder, queryMessage("www.example.internal", .a, edns: (1232, 0, true)))!))
        #expect(echoed.ednsDO)
        let badvers = try #require(decode(respond(responder, queryMessage("www.example.internal", .a, edns: (1232, 1, false)))!))
        #expect(badvers.extendedRcode == 1 && badvers.rcode == 0)  // 16 = (1 << 4) | 0
    }

    @Test func errorsEchoTheQuestion() throws {
        let notimp = try #require(decode(respond(responder, queryMessage("www.example.internal", .a, flags: 2 << 11))!))
        #expect(notimp.rcode == 4 && notimp.qdcount == 1)
        let refused = try #require(decode(respond(responder, queryMessage("example.com", .a))!))
        #expect(refused.rcode == 5 && !refused.aa)
    }

    @Test func neverTrapsOnFuzzedInput() {
        var answered = 0
        for bytes in QueryParserTests.fuzzCorpus(count: 20_000, seed: 11) {
            guard let response = respond(responder, bytes, vpc: "vpc-1", source: "10.10.1.7") else { continue }
            answered += 1
            #expect(response.count >= 12 && response[2] & 0x80 != 0, "a response has QR set")
        }
        #expect(answered > 0)
    }
}
