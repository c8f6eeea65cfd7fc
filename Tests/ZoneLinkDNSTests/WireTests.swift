import CLDNS
import Testing
import ZoneLinkTestSupport
import ZoneLinkCore
@testable import ZoneLinkDNS

@Suite("Query parser")
struct QueryParserTests {
    @Test func readsAWellFormedQuery() throws {
        let query = try #require(parsedQuery(queryMessage("WWW.Example.Internal", .aaaa, edns: (4096, 0, true))))
        #expect(query.id == 0x1234)
        #expect(query.name == DNSName("www.example.internal"))
        #expect(query.type == .aaaa)
        #expect(query.edns == EDNSOptions(payloadSize: 4096, version: 0, dnssecOK: true))
        #expect(query.udpPayloadLimit == 1232)
    }

    @Test func clientsBelow512GetTheMinimum() throws {
        #expect(try #require(parsedQuery(queryMessage("a.b", .a, edns: (100, 0, false)))).udpPayloadLimit == 512)
        #expect(try #require(parsedQuery(queryMessage("a.b", .a, edns: nil))).udpPayloadLimit == 512)
    }

    static func rcode(_ bytes: [UInt8]) -> RCode? {
        if case .reject(_, _, let rcode, _) = QueryParser.parse(bytes) { return rcode }
        return nil
    }

    static func isDropped(_ bytes: [UInt8]) -> Bool {
        if case .drop = QueryParser.parse(bytes) { return true }
        return false
    }

    @Test func malformedQueriesAreFormErr() {
        var two = queryMessage("a.b", .a, edns: nil)
        two[5] = 2
        #expect(Self.rcode(two) == .formErr)
        var none = queryMessage("a.b", .a, edns: nil)
        none[5] = 0
        #expect(Self.rcode(none) == .formErr)
        let truncated = Array(queryMessage("www.example.internal", .a, edns: nil).prefix(20))
        #expect(Self.rcode(truncated) == .formErr)
        var pastEnd = queryMessage("a.b", .a, edns: nil)
        pastEnd[12] = 60
        #expect(Self.rcode(pastEnd) == .formErr)
        let pointer: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(Self.rcode(pointer) == .formErr)
        var twoOPT = queryMessage("a.b", .a)
        twoOPT[11] = 2
        twoOPT += twoOPT.suffix(11)
        #expect(Self.rcode(twoOPT) == .formErr)
        var badOption = queryMessage("a.b", .a)
        badOption[badOption.count - 1] = 4  // rdlength 4, but no option data follows
        #expect(Self.rcode(badOption) == .formErr)
        #expect(Self.rcode(queryMessage("a.b", .opt)) == .formErr)
    }

    @Test func shortMessagesAndResponsesAreDropped() {
        #expect(Self.isDropped([1, 2, 3]))
        #expect(Self.isDropped(queryMessage("a.b", .a, flags: HeaderFlags.qr)))
    }

    @Test func otherOpcodesAreNotImplemented() {
        #expect(Self.rcode(queryMessage("a.b", .a, flags: 2 << 11)) == .notImp)
        #expect(Self.rcode(queryMessage("a.b", .soa, flags: 4 << 11)) == .notImp)
        // Whatever the sections hold under another opcode: no question, every flag set but QR.
        let bare: [UInt8] = [0x12, 0x34, 0x78, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(Self.rcode(bare) == .notImp)
        var allFlags = queryMessage("a.b", .a, flags: 15 << 11)
        allFlags[2] |= 0x07
        allFlags[3] = 0xFF
        guard case .reject(_, _, let rcode, let query) = QueryParser.parse(allFlags) else { Issue.record("not rejected"); return }
        #expect(rcode == .notImp && query?.name == DNSName("a.b"))
        var twoQuestions = queryMessage("a.b", .a, flags: 9 << 11)
        twoQuestions[5] = 2
        #expect(Self.rcode(twoQuestions) == .notImp)
    }

    /// Inputs the server sees from a fuzzer: random bytes and mutations of good queries.
    static func fuzzCorpus(count: Int, seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        let seeds = [
            queryMessage("ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal", .a),
            queryMessage("www.example.internal", .aaaa, edns: nil),
            queryMessage("a", .any, edns: (512, 0, true)),
        ]
        return (0..<count).map { i in
            var bytes = seeds[i % seeds.count]
            switch i % 4 {
            case 0:
                return (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 1:
                for _ in 0..<(1 + rng.next() % 4) { bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8)) }
            case 2:
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            default:
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                bytes[2] &= 0x7F
            }
            return bytes
        }
    }

    /// Whatever the Swift parser accepts, ldns (the library of record) accepts too and reads
    /// the same question and EDNS size.
    @Test func agreesWithLDNSOnFuzzedInput() throws {
        var accepted = 0
        for bytes in Self.fuzzCorpus(count: 30_000, seed: 7) {
            guard case .query(let query) = QueryParser.parse(bytes) else { continue }
            accepted += 1
            var packet: UnsafeMutablePointer<ldns_pkt>?
            let status = ldns_wire2pkt(&packet, bytes, bytes.count)
            #expect(status == LDNS_STATUS_OK, "ldns rejects what ZoneLink accepted: \(bytes)")
            guard status == LDNS_STATUS_OK, let packet else { continue }
            defer { ldns_pkt_free(packet) }
            let question = ldns_rr_list_rr(ldns_pkt_question(packet), 0)
            let owner = ldns_rr_owner(question)!
            let name = DNSName(validatedWire: UnsafeBufferPointer(start: ldns_rdf_data(owner), count: ldns_rdf_size(owner)))
            #expect(name == query.name)
            #expect(UInt16(ldns_rr_get_type(question).rawValue) == query.type.rawValue)
            #expect(ldns_pkt_id(packet) == query.id)
            if let edns = query.edns { #expect(ldns_pkt_edns_udp_size(packet) == edns.payloadSize) }
        }
        #expect(accepted > 1000, "the corpus should hold many acceptable queries, had \(accepted)")
    }
}

@Suite("Names")
struct DNSNameTests {
    @Test func presentationAndWire() throws {
        let name = try #require(DNSName("Ep-1.Example.Internal."))
        #expect(name.wire == [4, 101, 112, 45, 49, 7, 101, 120, 97, 109, 112, 108, 101, 8, 105, 110, 116, 101, 114, 110, 97, 108, 0])
        #expect(name.description == "ep-1.example.internal.")
        #expect(name.parent == DNSName("example.internal"))
        #expect(name.labelCount == 3)
        #expect(name.isSubdomain(of: DNSName("internal")!))
        #expect(!name.isSubdomain(of: DNSName("ternal")!))
        #expect(DNSName.root.description == ".")
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
    }
}
