import Foundation
import NIOCore
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// Zone transfers (issue 8): what a view holds, how an AXFR is split and signed, and every
/// refusal, through `Responder` as the listeners call it.
@Suite("Zone transfers")
struct TransferTests {
    static let keyA = TSIGKey(name: DNSName("vpc1-a.key")!, algorithm: .hmacSHA256, secret: SecretBytes(Array("secret-of-zone-a-secondary......".utf8)))
    static let keyAll = TSIGKey(name: DNSName("vpc1.key")!, algorithm: .hmacSHA512, secret: SecretBytes(Array("secret-of-the-vpc-wide-secondary".utf8)))
    static let keyVPC9 = TSIGKey(name: DNSName("vpc9.key")!, algorithm: .hmacSHA256, secret: SecretBytes(Array("secret-of-vpc-9".utf8)))
    static let now: UInt64 = UInt64(Date().timeIntervalSince1970)

    let engine: AnswerEngine
    let responder: Responder
    let serials = ViewSerials(clock: { 1_000 })

    init() throws {
        engine = try makeEngine()
        let allow = [IPv4Prefix(network: IPv4Address("127.0.0.0")!, length: 8)!]
        let policy = TransferPolicy(grants: [
            Self.keyA.name: .init(key: Self.keyA, view: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), allowFrom: allow, secondaries: ["a"]),
            Self.keyAll.name: .init(key: Self.keyAll, view: ViewKey(vpc: "vpc-1", zone: nil), allowFrom: allow, secondaries: ["all"]),
            Self.keyVPC9.name: .init(key: Self.keyVPC9, view: ViewKey(vpc: "vpc-9", zone: nil), allowFrom: allow, secondaries: ["nine"]),
        ])
        responder = Responder(engine: engine, transfers: Responder.Transfers(policy: policy, serials: serials))
    }

    /// The messages `responder` answers `request` with, over `transport`.
    func exchange(_ request: [UInt8], source: String = "127.0.0.1", transport: Responder.Transport = .tcp) -> [[UInt8]] {
        var output = ByteBuffer()
        let outcome = request.withUnsafeBytes {
            responder.respond(to: $0, listener: ListenerContext(vpc: nil, zone: nil), source: IPv4Address(source), transport: transport, into: &output)
        }
        switch outcome {
        case .answered: return [Array(output.readableBytesView)]
        case .stream(let messages): return messages
        default: return []
        }
    }

    func signed(_ name: String, _ type: RRType, key: TSIGKey = keyA, time: UInt64 = now) -> (message: [UInt8], mac: [UInt8]) {
        TSIG.signRequest(queryMessage(name, type, edns: nil), key: key, time: time)
    }

    /// The TSIG error of a response, and whether it carries a MAC.
    func tsig(_ message: [UInt8]) -> (error: UInt16, signed: Bool)? {
        guard case .success(let record?) = TSIG.find(in: message) else { return nil }
        return (record.error, !record.mac.isEmpty)
    }

    /// Every message of a transfer verifies, in order, along the chain from the request's MAC.
    func verifyChain(_ messages: [[UInt8]], key: TSIGKey, requestMAC: [UInt8]) -> Bool {
        var previous = requestMAC
        for (index, message) in messages.enumerated() {
            guard case .success(let record?) = TSIG.find(in: message) else { return false }
            var data: [UInt8] = []
            data.append16(UInt16(previous.count))
            data += previous
            if index == 0 {
                data += TSIG.signedData(of: message, record)
            } else {
                var unsigned = Array(message[..<record.start])
                unsigned[11] -= 1
                data += unsigned
                data.append48(record.timeSigned)
                data.append16(record.fudge)
            }
            guard key.algorithm.mac(data, secret: key.secret.bytes) == record.mac else { return false }
            previous = record.mac
        }
        return true
    }

    func answers(_ messages: [[UInt8]]) -> [String] {
        messages.flatMap { decode($0)?.answer ?? [] }
    }

    @Test func axfrOfAZonalViewHoldsThatZonesENIs() throws {
        let (request, mac) = signed("privatelink.internal", .axfr)
        let messages = exchange(request)
        let records = answers(messages)
        #expect(decode(messages[0])?.rcode == 0 && decode(messages[0])?.aa == true)
        #expect(records.first?.contains("IN SOA") == true && records.last == records.first, "\(records)")
        // Affinity on: the zone-a ENI only; off: both, zone a first.
        #expect(records.contains("ep-aff.epsrv-aff.\(suffix). 60 IN A 10.10.1.10"))
        #expect(!records.contains("ep-aff.epsrv-aff.\(suffix). 60 IN A 10.10.2.10"))
        #expect(records.filter { $0.hasPrefix("ep-off.epsrv-off.\(suffix). ") }.count == 2)
        #expect(records.contains("ep-aff-eu-central-1b.epsrv-aff.\(suffix). 60 IN A 10.10.2.10"), "zonal names are every view's")
        #expect(records.contains("epsrv-aff.\(suffix). 60 IN A 10.10.1.10"), "the VPC's service name")
        #expect(!records.contains { $0.contains("example.internal.") && !$0.contains("privatelink") }, "static zones are not transferred")
        #expect(verifyChain(messages, key: Self.keyA, requestMAC: mac))
    }

    @Test func axfrFollowsHealthLikeAnswering() throws {
        let health = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a")])
        let zone = try #require(ViewContent.zone(DNSName("privatelink.internal")!, of: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), engine: engine, health: health))
        let endpoint = zone.records.filter { $0.owner == DNSName("ep-aff.epsrv-aff.\(suffix)") }.map(\.rdata)
        #expect(endpoint == [[10, 10, 2, 10]])
        let healthy = try #require(ViewContent.zone(DNSName("privatelink.internal")!, of: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), engine: engine, health: .allHealthy))
        #expect(zone.contentDigest != healthy.contentDigest)
        #expect(serials.serial(for: .init(view: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), apex: zone.apex), digest: healthy.contentDigest) == 1_000)
        #expect(serials.serial(for: .init(view: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), apex: zone.apex), digest: zone.contentDigest) == 1_001)
        #expect(serials.serial(for: .init(view: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), apex: zone.apex), digest: zone.contentDigest) == 1_001)
    }

    @Test func thePrivateDomainIsTransferredToo() throws {
        let (request, mac) = signed("api.provider.example", .axfr, key: Self.keyAll)
        let messages = exchange(request)
        let records = answers(messages)
        #expect(records.contains("api.provider.example. 60 IN A 10.10.1.10") && records.contains("api.provider.example. 60 IN A 10.10.2.10"), "\(records)")
        #expect(verifyChain(messages, key: Self.keyAll, requestMAC: mac))
    }

    @Test func theCatalogZoneListsTheViewsZones() throws {
        let (request, mac) = signed("catalog.zonelink.invalid", .axfr, key: Self.keyAll)
        let messages = exchange(request)
        let records = answers(messages)
        #expect(records.contains("version.catalog.zonelink.invalid. 0 IN TXT \"2\""), "\(records)")
        let members = records.filter { $0.contains(" PTR ") }.compactMap { $0.split(separator: " ").last.map(String.init) }.sorted()
        #expect(members == ["api.provider.example.", "privatelink.internal."], "\(records)")
        #expect(verifyChain(messages, key: Self.keyAll, requestMAC: mac))
        // vpc-9 has no endpoint of the service with the private domain: the generated zone only.
        let nine = answers(exchange(signed("catalog.zonelink.invalid", .axfr, key: Self.keyVPC9).message))
        #expect(nine.filter { $0.contains(" PTR ") }.count == 1, "\(nine)")
    }

    @Test func soaIsSignedAndCarriesTheViewsSerial() throws {
        let (request, mac) = signed("privatelink.internal", .soa)
        let messages = exchange(request, transport: .udp)
        #expect(messages.count == 1)
        let response = try #require(decode(messages[0]))
        #expect(response.rcode == 0 && response.answer.count == 1 && response.answer[0].contains(" 1000 3600 600 86400 60"), "\(response.answer)")
        #expect(TSIG.verifyResponse(messages[0], key: Self.keyA, requestMAC: mac, now: Self.now))
    }

    @Test func ixfrIsTheSOAWhenCurrentAndTheZoneWhenBehind() throws {
        // The serial of the view is 1000 (clock); ask with 1000, then with 999.
        for (clientSerial, expectWhole) in [(UInt32(1_000), false), (UInt32(1_500), false), (UInt32(999), true)] {
            var message = queryMessage("privatelink.internal", .ixfr, edns: nil)
            message[9] = 1  // NSCOUNT
            message += [0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]  // owner, SOA, IN, TTL, RDLENGTH, "." "."
            message.append32(clientSerial)
            message += Array(repeating: 0, count: 16)
            let (request, mac) = TSIG.signRequest(message, key: Self.keyA, time: Self.now)
            let messages = exchange(request)
            let records = answers(messages)
            #expect(expectWhole ? records.count > 3 : records.count == 1, "client at \(clientSerial): \(records.count) records")
            #expect(verifyChain(messages, key: Self.keyA, requestMAC: mac))
        }
    }

    /// An IXFR request from `serial`, signed with `keyA`.
    func ixfr(from serial: UInt32) -> (message: [UInt8], mac: [UInt8]) {
        var message = queryMessage("privatelink.internal", .ixfr, edns: nil)
        message[9] = 1  // NSCOUNT
        message += [0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]
        message.append32(serial)
        message += Array(repeating: 0, count: 16)
        return TSIG.signRequest(message, key: Self.keyA, time: Self.now)
    }

    @Test func ixfrSendsTheChangesTheJournalHolds() throws {
        let (first, _) = signed("privatelink.internal", .soa)
        _ = exchange(first)  // serial 1000 for the healthy content
        // The zone-a ENI of ep-aff fails: the zone-a view changes; the same serials answer.
        let unhealthy = Responder(
            engine: engine, health: ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a")]), transfers: responder.transfers)
        var output = ByteBuffer()
        let (request, mac) = ixfr(from: 1_000)
        guard case .answered = request.withUnsafeBytes({
            unhealthy.respond(to: $0, listener: ListenerContext(vpc: nil, zone: nil), source: IPv4Address("127.0.0.1"), transport: .tcp, into: &output)
        }) else {
            Issue.record("no single-message answer")
            return
        }
        let messages = [Array(output.readableBytesView)]
        let records = answers(messages)
        #expect(records.count == 8, "\(records)")
        #expect(records.first?.contains(" 1001 3600") == true && records.last == records.first && records[1].contains(" 1000 3600"))
        #expect(records[2...3].allSatisfy { $0.hasSuffix("IN A 10.10.1.10") }, "deleted: \(records[2...3])")
        #expect(records[4].contains(" 1001 3600") && records[5...6].allSatisfy { $0.hasSuffix("IN A 10.10.2.10") }, "added: \(records[4...6])")
        #expect(verifyChain(messages, key: Self.keyA, requestMAC: mac))
        // A serial the journal does not reach gets the whole zone.
        var whole = ByteBuffer()
        _ = ixfr(from: 500).message.withUnsafeBytes {
            unhealthy.respond(to: $0, listener: ListenerContext(vpc: nil, zone: nil), source: IPv4Address("127.0.0.1"), transport: .tcp, into: &whole)
        }
        let all = answers([Array(whole.readableBytesView)])
        #expect(all.count > 8 && all.filter { $0.contains("IN SOA") }.count == 2, "\(all)")
    }

    @Test func refusals() throws {
        // No key at all.
        let unsigned = exchange(queryMessage("privatelink.internal", .axfr, edns: nil))
        #expect(decode(unsigned[0])?.rcode == RCode.refused.rawValue && tsig(unsigned[0]) == nil)
        // A key ZoneLink does not know.
        let stranger = TSIGKey(name: DNSName("stranger.key")!, algorithm: .hmacSHA256, secret: SecretBytes([1, 2, 3]))
        let badKey = exchange(signed("privatelink.internal", .axfr, key: stranger).message)
        #expect(decode(badKey[0])?.rcode == RCode.notAuth.rawValue)
        #expect(tsig(badKey[0])?.error == TSIGError.badKey.rawValue && tsig(badKey[0])?.signed == false)
        // The right name with the wrong secret.
        let forged = TSIGKey(name: Self.keyA.name, algorithm: .hmacSHA256, secret: SecretBytes([9, 9, 9]))
        let badSig = exchange(signed("privatelink.internal", .axfr, key: forged).message)
        #expect(decode(badSig[0])?.rcode == RCode.notAuth.rawValue && tsig(badSig[0])?.error == TSIGError.badSig.rawValue)
        // An old signature.
        let (old, oldMAC) = signed("privatelink.internal", .axfr, time: Self.now - 3_600)
        let badTime = exchange(old)
        #expect(decode(badTime[0])?.rcode == RCode.notAuth.rawValue && tsig(badTime[0])?.error == TSIGError.badTime.rawValue)
        #expect(tsig(badTime[0])?.signed == true, "BADTIME is signed")
        _ = oldMAC
        // A source outside allowFrom.
        let (request, mac) = signed("privatelink.internal", .axfr)
        let outside = exchange(request, source: "10.0.0.1")
        #expect(decode(outside[0])?.rcode == RCode.refused.rawValue && tsig(outside[0])?.signed == true)
        #expect(verifyChain(outside, key: Self.keyA, requestMAC: mac))
        // AXFR over UDP.
        let udp = exchange(request, transport: .udp)
        #expect(decode(udp[0])?.rcode == RCode.refused.rawValue && verifyChain(udp, key: Self.keyA, requestMAC: mac))
        // The right key for another view: vpc-9 has no private domain.
        let (other, otherMAC) = signed("api.provider.example", .axfr, key: Self.keyVPC9)
        let notInView = exchange(other)
        #expect(decode(notInView[0])?.rcode == RCode.notAuth.rawValue && verifyChain(notInView, key: Self.keyVPC9, requestMAC: otherMAC))
        // A zone nobody's view has.
        let (nowhere, _) = signed("example.internal", .axfr)
        #expect(decode(exchange(nowhere)[0])?.rcode == RCode.notAuth.rawValue)
    }

    @Test func withoutSecondariesTransfersAreRefusedAsBefore() throws {
        let plain = Responder(engine: engine)
        let (request, _) = signed("privatelink.internal", .axfr)
        let response = try #require(respond(plain, request, transport: .tcp))
        #expect(decode(response)?.rcode == RCode.refused.rawValue)
    }

    @Test func malformedRequestsGetFORMERROrAnAnswerNeverATrap() throws {
        let (request, _) = signed("privatelink.internal", .axfr)
        for length in 0..<request.count {
            _ = exchange(Array(request.prefix(length)))
        }
        for index in 12..<request.count {
            var changed = request
            changed[index] ^= 0xFF
            _ = exchange(changed)
        }
        var twoTSIG = request + Array(request[(12 + 26)...])
        twoTSIG[11] = 2
        #expect(decode(exchange(twoTSIG)[0])?.rcode == RCode.formErr.rawValue)
    }

    @Test func aTenThousandEndpointViewIsSplitIntoMessagesUnderTheBudget() throws {
        let engine = try bigEngine(endpoints: 10_000)
        let zone = try #require(ViewContent.zone(DNSName("privatelink.internal")!, of: ViewKey(vpc: "vpc-1", zone: nil), engine: engine, health: .allHealthy))
        let writer = TransferMessages(id: 7, requestFlags: 0, question: DNSName("privatelink.internal")!.wire + [0, 252, 0, 1])
        var chain: TSIG.Chain? = TSIG.Chain(key: Self.keyA, requestMAC: [1, 2, 3])
        let messages = writer.messages(zone.axfrRecords, chain: &chain, time: Self.now)

        #expect(messages.count > 1, "\(messages.map(\.count))")
        #expect(messages.allSatisfy { $0.count < 65_536 })
        #expect(answers(messages).count == zone.records.count + 2)
        #expect(decode(messages[0])?.qdcount == 1 && decode(messages[1])?.qdcount == 0)
        #expect(verifyChain(messages, key: Self.keyA, requestMAC: [1, 2, 3]))
        // Small budgets too: every record once, in order.
        var unsigned: TSIG.Chain? = nil
        let some = Array(zone.axfrRecords.prefix(2_000))
        let small = writer.messages(some, chain: &unsigned, time: Self.now, budget: 512)
        let whole = writer.messages(some, chain: &unsigned, time: Self.now)
        #expect(small.count > 10 && small.allSatisfy { $0.count <= 512 } && answers(small) == answers(whole))
    }

    @Test func aSecondTransferReusesTheWrittenMessagesFittedToItsRequest() throws {
        // The first AXFR writes the messages; the second (another ID, RD off, the name in
        // capitals, an IXFR answered AXFR-style) gets the same records with its own header,
        // question and signatures.
        let (first, firstMAC) = signed("privatelink.internal", .axfr, key: Self.keyAll)
        let written = exchange(first)
        var message = queryMessage("PrivateLink.INTERNAL", .ixfr, id: 0x5151, flags: 0, edns: nil)
        message[9] = 1  // NSCOUNT: a SOA with serial 7, which the journal does not reach
        message += [0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0, 0, 0, 0, 7] + Array(repeating: 0, count: 16)
        let (second, secondMAC) = TSIG.signRequest(message, key: Self.keyAll, time: Self.now)
        let reused = exchange(second)
        #expect(verifyChain(written, key: Self.keyAll, requestMAC: firstMAC))
        #expect(verifyChain(reused, key: Self.keyAll, requestMAC: secondMAC))
        #expect(answers(reused) == answers(written) && answers(reused).count > 3)
        #expect(reused.allSatisfy { $0[0] == 0x51 && $0[1] == 0x51 && $0[2] & 0x01 == 0 })
        let question = 12..<(12 + DNSName("privatelink.internal")!.wire.count + 4)
        #expect(Array(reused[0][question]) == Array(message[question]), "the request's question, as written")
        let decoded = try #require(decode(reused[0]))
        #expect(decoded.rcode == 0 && decoded.aa && decoded.qdcount == 1)
    }

    @Test func serialsFollowRFC1982() {
        #expect(SerialNumber.isGreater(1, than: 0) && SerialNumber.isGreater(0, than: UInt32.max))
        #expect(!SerialNumber.isGreater(0, than: 1) && !SerialNumber.isGreater(5, than: 5))
        #expect(ViewSerials.next(after: nil, now: 77) == 77)
        #expect(ViewSerials.next(after: 100, now: 50) == 101, "a clock behind the serial never takes it back")
        #expect(ViewSerials.next(after: UInt32.max, now: 3) == 3, "wrapping around is going forward")
        #expect(ViewSerials.next(after: UInt32.max, now: UInt32.max - 5) == 0)
    }

    /// vpc-1 with `endpoints` endpoints of one service, an ENI in each of its two zones.
    func bigEngine(endpoints: Int) throws -> AnswerEngine {
        var yaml = """
            region: eu-central-1
            domain: privatelink.internal
            accounts: [{id: "1111111111111111", name: a}, {id: "2222222222222222", name: b}]
            vpcs:
              - {id: vpc-1, account: a, cidr: 10.0.0.0/8, netns: vpc1, vswitches: [{id: vsw-a, zone: eu-central-1a, cidr: 10.1.0.0/16}, {id: vsw-b, zone: eu-central-1b, cidr: 10.2.0.0/16}]}
              - {id: vpc-2, account: b, cidr: 192.168.0.0/16, netns: vpc2, vswitches: [{id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}, {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}]}
            loadBalancers:
              - {id: clb-a, account: b, vpc: vpc-2, zone: eu-central-1a, natAddresses: [192.168.23.240], address: 192.168.23.100, listeners: [{protocol: tcp, port: 80}]}
              - {id: clb-b, account: b, vpc: vpc-2, zone: eu-central-1b, natAddresses: [192.168.24.240], address: 192.168.24.100, listeners: [{protocol: tcp, port: 80}]}
            endpointServices:
              - {id: epsrv-big, account: b, resources: [{zone: eu-central-1a, loadBalancer: clb-a}, {zone: eu-central-1b, loadBalancer: clb-b}], zoneAffinity: true, whitelist: ["1111111111111111"]}
            endpoints:

            """
        for i in 0..<endpoints {
            yaml += "  - {id: ep-\(i), account: a, service: epsrv-big, vpc: vpc-1, zones: [{zone: eu-central-1a, vswitch: vsw-a}, {zone: eu-central-1b, vswitch: vsw-b}]}\n"
        }
        return AnswerEngine(catalog: try Catalog(configuration: Configuration.parse(yaml: yaml, file: "big"), file: "big"))
    }
}
