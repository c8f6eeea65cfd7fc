import Foundation
import NIOCore
import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkDNS

/// Prepared answers (issue 11) say byte for byte what the responder says: for every question
/// of the differential test (and the affinity names it leaves out), asked in several shapes
/// (EDNS or not, DO, small and large sizes, an inert option, RD and CD, IDs, the name's case
/// changed between the first and the second asking), by clients of several listeners, over UDP
/// and TCP; before and after a health change and a catalog change, so no answer outlives what
/// it was prepared from.
@Suite("Prepared answers")
struct PreparedAnswersTests {
    static let config = try! String(contentsOfFile: "\(packageRoot)/zones/local.yaml", encoding: .utf8)
    static let staticZone = try! ZoneFile.load(path: "\(packageRoot)/zones/example.internal.zone")

    static func engine(_ yaml: String) throws -> AnswerEngine {
        let catalog = try Catalog(configuration: Configuration.parse(yaml: yaml, file: "local.yaml"), file: "local.yaml")
        return AnswerEngine(catalog: catalog, staticZones: [staticZone])
    }

    /// Who asks: the pinned listener (zone b), the listener that reads the zone from the source
    /// address (zone a, zone b, no vSwitch), and a client of no VPC.
    static let askers: [(listener: ListenerContext, source: String)] = [
        (ListenerContext(vpc: "vpc-1", zone: "eu-central-1b"), "127.0.0.1"),
        (ListenerContext(vpc: "vpc-1", zone: nil), "127.10.1.10"),
        (ListenerContext(vpc: "vpc-1", zone: nil), "127.10.2.10"),
        (ListenerContext(vpc: "vpc-1", zone: nil), "127.0.0.1"),
        (ListenerContext(vpc: nil, zone: nil), "127.0.0.1"),
    ]

    /// The question in one of the shapes a client may send; `variant` picks the shape, `id`
    /// and `caseSeed` what changes between askings.
    static func message(_ question: CorpusQuestion, variant: Int, id: UInt16, caseSeed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: caseSeed)
        let name = String(question.name.map { Bool.random(using: &rng) ? Character($0.uppercased()) : Character($0.lowercased()) })
        let type = RRType(rawValue: question.type)
        switch variant % 6 {
        case 0: return queryMessage(name, type, id: id, edns: nil)
        case 1: return queryMessage(name, type, id: id, flags: 0, edns: (1232, 0, false))
        case 2: return queryMessage(name, type, id: id, flags: HeaderFlags.rd | HeaderFlags.cd, edns: (512, 0, true))
        case 3: return queryMessage(name, type, id: id, flags: HeaderFlags.ad, edns: (4096, 0, false))
        case 4:
            // An EDNS cookie (RFC 7873): an option the answer does not depend on.
            var bytes = queryMessage(name, type, id: id, edns: (1400, 0, true))
            bytes[bytes.count - 2] = 0
            bytes[bytes.count - 1] = 12
            return bytes + [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]
        default: return queryMessage(name, type, id: id, edns: (0, 0, false))  // a size below 512 counts as 512
        }
    }

    /// Asks every question in every shape of every asker twice through `prepared` (the second
    /// time with another ID and case) and compares each response with `responder`'s own.
    /// Returns the mismatches, described.
    static func compare(_ prepared: PreparedAnswers, _ responder: Responder, questions: [CorpusQuestion]) -> [String] {
        var mismatches: [String] = []
        var id: UInt16 = 1
        for (q, question) in questions.enumerated() {
            for (a, asker) in askers.enumerated() {
                for variant in 0..<6 {
                    for round in 0..<2 {
                        id &+= 7919
                        let transport: Responder.Transport = (q + variant + round) % 5 == 0 ? .tcp : .udp
                        let bytes = message(question, variant: variant, id: id, caseSeed: UInt64(q * 1000 + a * 10 + round))
                        let source = IPv4Address(asker.source)
                        var expected = ByteBuffer()
                        var actual = ByteBuffer()
                        prepared.follow(responder)
                        let outcomes = bytes.withUnsafeBytes { message in
                            (responder.respond(to: message, listener: asker.listener, source: source, transport: transport, into: &expected),
                             prepared.respond(to: message, listener: asker.listener, source: source, transport: transport,
                                              responder: responder, into: &actual))
                        }
                        guard case .answered = outcomes.0, case .answered = outcomes.1 else {
                            mismatches.append("\(question) variant \(variant): not answered (\(outcomes))")
                            continue
                        }
                        if Array(expected.readableBytesView) != Array(actual.readableBytesView) {
                            mismatches.append(
                                "\(question) variant \(variant) asker \(a) round \(round) \(transport):\n"
                                    + "engine   \(Array(expected.readableBytesView))\nprepared \(Array(actual.readableBytesView))")
                        }
                    }
                }
            }
        }
        return mismatches
    }

    /// The differential test's questions, plus the affinity names' A questions it leaves out
    /// (here both sides answer the same client).
    static let questions = DifferentialCorpus.generate(seed: 0x5EED_2026_0002, count: 400) + [
        CorpusQuestion(name: DifferentialCorpus.endpoint, type: 1),
        CorpusQuestion(name: DifferentialCorpus.service, type: 1),
        CorpusQuestion(name: "EP-Consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal", type: 1),
        CorpusQuestion(name: "big.example.internal", type: 1),
        CorpusQuestion(name: "www.example.internal", type: 255),
    ]

    @Test func sameBytesAsTheEngineBeforeAndAfterAHealthAndACatalogChange() throws {
        let serials = ViewSerials(clock: { 1_700_000_000 })
        let clientSerials = ClientSerials(serials: serials)
        let engine = try Self.engine(Self.config)
        let prepared = PreparedAnswers()

        // 1. As loaded.
        let first = Responder(engine: engine, clientSerials: clientSerials)
        // A first pass lets the client serials of every view settle (a serial may move on
        // another thread between the engine's answer and the prepared one); the second counts.
        _ = Self.compare(prepared, first, questions: Self.questions)
        clientSerials.settle()
        var mismatches = Self.compare(prepared, first, questions: Self.questions)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches:\n\(mismatches.prefix(5).joined(separator: "\n"))")
        #expect(prepared.hits > 1000 && prepared.misses > 100, "hits \(prepared.hits), misses \(prepared.misses)")
        let endpointA = CorpusQuestion(name: DifferentialCorpus.endpoint, type: 1)
        let before = try answerBytes(prepared, first, endpointA)

        // 2. Zone b's ENI of ep-consumer1 unhealthy: the pinned zone-b listener now gets zone a's.
        let unhealthy = Responder(
            engine: engine, health: ZoneHealth(unhealthy: [ENIID(endpoint: "ep-consumer1", zone: "eu-central-1b")]),
            clientSerials: clientSerials)
        let hitsBefore = prepared.hits
        _ = Self.compare(prepared, unhealthy, questions: Self.questions)
        clientSerials.settle()
        mismatches = Self.compare(prepared, unhealthy, questions: Self.questions)
        #expect(mismatches.isEmpty, "after a health change, \(mismatches.count) mismatches:\n\(mismatches.prefix(5).joined(separator: "\n"))")
        #expect(prepared.hits > hitsBefore)
        let afterHealth = try answerBytes(prepared, unhealthy, endpointA)
        #expect(afterHealth != before, "the health change changes the pinned listener's answer")

        // 3. A catalog change: zone b's ENI moves to another address.
        let moved = try Self.engine(Self.config.replacingOccurrences(of: "127.10.2.50", with: "127.10.2.60"))
        let changed = Responder(engine: moved, clientSerials: clientSerials)
        _ = Self.compare(prepared, changed, questions: Self.questions)
        clientSerials.settle()
        mismatches = Self.compare(prepared, changed, questions: Self.questions)
        #expect(mismatches.isEmpty, "after a catalog change, \(mismatches.count) mismatches:\n\(mismatches.prefix(5).joined(separator: "\n"))")
        let afterCatalog = try answerBytes(prepared, changed, endpointA)
        #expect(afterCatalog != before && afterCatalog.firstRange(of: [127, 10, 2, 60]) != nil)
    }

    /// The response to `question` from the pinned listener through `prepared`, asked twice
    /// (the second a prepared one).
    func answerBytes(_ prepared: PreparedAnswers, _ responder: Responder, _ question: CorpusQuestion) throws -> [UInt8] {
        var last: [UInt8] = []
        for _ in 0..<2 {
            var output = ByteBuffer()
            prepared.follow(responder)
            _ = Self.message(question, variant: 1, id: 7, caseSeed: 1).withUnsafeBytes {
                prepared.respond(to: $0, listener: Self.askers[0].listener, source: IPv4Address("127.0.0.1"), transport: .udp,
                                 responder: responder, into: &output)
            }
            last = Array(output.readableBytesView)
        }
        return last
    }

    /// A SOA serial that moves (the client serials' view rebuilt after a change) is never
    /// answered from before the move.
    @Test func aMovedSerialIsNotAnsweredFromBefore() throws {
        let serials = ViewSerials(clock: { 1_700_000_000 })
        let clientSerials = ClientSerials(serials: serials)
        let prepared = PreparedAnswers()
        let soa = CorpusQuestion(name: DifferentialCorpus.domain, type: 6)
        let first = Responder(engine: try Self.engine(Self.config), clientSerials: clientSerials)
        let before = try answerBytes(prepared, first, soa)
        // Another catalog: the first question gets the last serial known and queues the rebuild.
        let moved = try Self.engine(Self.config.replacingOccurrences(of: "127.10.2.50", with: "127.10.2.60"))
        let changed = Responder(engine: moved, clientSerials: clientSerials)
        _ = try answerBytes(prepared, changed, soa)
        clientSerials.settle()
        let after = try answerBytes(prepared, changed, soa)
        var expected = ByteBuffer()
        _ = Self.message(soa, variant: 1, id: 7, caseSeed: 1).withUnsafeBytes {
            changed.respond(to: $0, listener: Self.askers[0].listener, source: IPv4Address("127.0.0.1"), transport: .udp, into: &expected)
        }
        #expect(after == Array(expected.readableBytesView))
        #expect(after != before, "the serial moved with the content")
    }

    /// Whatever a fuzzer sends gets the responder's answer (or none) through the prepared path.
    @Test func fuzzedInputGetsTheRespondersAnswer() throws {
        let responder = Responder(engine: try makeEngine())
        let prepared = PreparedAnswers(capacity: 64)
        prepared.follow(responder)
        var differing = 0
        for bytes in QueryParserTests.fuzzCorpus(count: 20_000, seed: 13) {
            for _ in 0..<2 {
                var expected = ByteBuffer()
                var actual = ByteBuffer()
                let listener = ListenerContext(vpc: "vpc-1", zone: "eu-central-1a")
                let outcomes = bytes.withUnsafeBytes { message in
                    (responder.respond(to: message, listener: listener, source: nil, transport: .udp, into: &expected),
                     prepared.respond(to: message, listener: listener, source: nil, transport: .udp, responder: responder, into: &actual))
                }
                switch outcomes {
                case (.answered, .answered): if Array(expected.readableBytesView) != Array(actual.readableBytesView) { differing += 1 }
                case (.dropped, .dropped): break
                default: differing += 1
                }
            }
        }
        #expect(differing == 0)
        #expect(prepared.hits > 0)
    }

    /// The key's case folding, eight bytes at a time, folds exactly what `DNSName.lower` folds:
    /// every byte value in every position, beside neighbours that are letters and not.
    @Test func foldingEightBytesAtOnceIsTheByteRule() {
        for value in 0...255 {
            for position in 0..<8 {
                for neighbour: UInt8 in [0, 0x40, 0x41, 0x5A, 0x5B, 0x61, 0x80, 0xC1, 0xFF] {
                    var bytes = [UInt8](repeating: neighbour, count: 8)
                    bytes[position] = UInt8(value)
                    let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    let folded = withUnsafeBytes(of: PreparedAnswers.lowercased(word)) { Array($0) }
                    #expect(folded == bytes.map(DNSName.lower), "byte \(value) at \(position) beside \(neighbour)")
                }
            }
        }
    }

    /// Two questions are the same key only when every byte is: a difference in any one byte
    /// of any length a question can have is seen.
    @Test func questionsDifferingInOneByteAreDifferent() {
        var rng = SplitMix64(seed: 11)
        for length in 0...(DNSName.maxWireLength + 4) {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            bytes.withUnsafeBytes { same in
                let copy = Array(same)
                copy.withUnsafeBytes { #expect(PreparedAnswers.equal(same.baseAddress!, $0.baseAddress!, count: length)) }
            }
            for position in 0..<length {
                var other = bytes
                other[position] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                let equal = bytes.withUnsafeBytes { a in other.withUnsafeBytes { b in PreparedAnswers.equal(a.baseAddress!, b.baseAddress!, count: length) } }
                #expect(!equal, "length \(length), byte \(position)")
            }
        }
    }

    /// The table never holds more than its capacity, and a full byte budget starts it afresh.
    @Test func memoryIsBounded() throws {
        let responder = Responder(engine: try makeEngine())
        let prepared = PreparedAnswers(capacity: 16, byteBudget: 2_000)
        prepared.follow(responder)
        for i in 0..<500 {
            var output = ByteBuffer()
            _ = queryMessage("n\(i).example.internal", .a).withUnsafeBytes {
                prepared.respond(to: $0, listener: ListenerContext(vpc: "vpc-1", zone: nil), source: nil, transport: .udp,
                                 responder: responder, into: &output)
            }
            #expect(prepared.count <= 16)
        }
        #expect(prepared.misses == 500)
    }

    /// The servers' tables take their size from the catalog: a catalog with more names than the
    /// default table holds gets a table with room for every name, so a client asking each of
    /// them over and over is answered from the table, not pushed out of it by the others.
    @Test func aTableSizedFromTheCatalogHasRoomForEveryName() throws {
        let endpoints = 6_000
        var yaml = engineConfig.replacingOccurrences(
            of: "      - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}\n",
            with: "      - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}\n"
                + "      - {id: vsw-1c, zone: eu-central-1a, cidr: 10.10.64.0/18}\n"
                + "      - {id: vsw-1d, zone: eu-central-1b, cidr: 10.10.128.0/18}\n") + "\n"
        for i in 0..<endpoints {
            yaml += "  - {id: ep-n\(i), account: a, service: epsrv-off, vpc: vpc-1, zones: ["
                + "{zone: eu-central-1a, vswitch: vsw-1c, address: 10.10.\(64 + i / 250).\(i % 250 + 2)}, "
                + "{zone: eu-central-1b, vswitch: vsw-1d, address: 10.10.\(128 + i / 250).\(i % 250 + 2)}]}\n"
        }
        let catalog = try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t")
        #expect(catalog.endpoints.count == endpoints + 2)
        let responder = Responder(engine: AnswerEngine(catalog: catalog))
        // 18,000-odd names, two questions each: past the default 32,768, within the next power of two.
        #expect(PreparedAnswers.catalogCapacity(catalog) == 65_536)
        #expect(PreparedAnswers.catalogCapacity(try makeEngine().catalog) == PreparedAnswers.defaultCapacity)

        let names = (0..<endpoints).flatMap { i in
            ["ep-n\(i)", "ep-n\(i)-eu-central-1a", "ep-n\(i)-eu-central-1b"].map { "\($0).epsrv-off.eu-central-1.privatelink.internal" }
        }
        func secondPassHits(_ prepared: PreparedAnswers) -> Int {
            prepared.follow(responder)
            let listener = ListenerContext(vpc: "vpc-1", zone: "eu-central-1a")
            // The first pass prepares (every name is new), the second is answered from the table.
            for _ in 0..<2 {
                for name in names {
                    var output = ByteBuffer()
                    var expected = ByteBuffer()
                    let message = queryMessage(name, .a)
                    let outcomes = message.withUnsafeBytes {
                        (prepared.respond(to: $0, listener: listener, source: nil, transport: .udp, responder: responder, into: &output),
                         responder.respond(to: $0, listener: listener, source: nil, transport: .udp, into: &expected))
                    }
                    guard case (.answered, .answered) = outcomes, output.readableBytesView.elementsEqual(expected.readableBytesView) else {
                        Issue.record("\(name): the table's answer is not the responder's")
                        return 0
                    }
                }
            }
            return prepared.hits
        }
        let sized = PreparedAnswers.sizedFromCatalog()
        let sizedHits = secondPassHits(sized)
        #expect(sized.capacity == 65_536)
        let fixed = PreparedAnswers(capacity: 16_384)
        let fixedHits = secondPassHits(fixed)
        #expect(fixed.capacity == 16_384)
        // Two slots per question, picked by a hash with a random seed; a question that finds
        // both taken moves an entry to its other slot (cuckoo hashing), so a table a quarter
        // full keeps practically every question (without the moves, about 70 % of them).
        #expect(sizedHits > fixedHits && sizedHits >= names.count * 99 / 100, "sized: \(sizedHits), fixed: \(fixedHits) of \(names.count)")
    }
}
