import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// The SOA serial ordinary clients see is their view's: the one its secondaries transfer,
/// persisted, never going back (issue 8), not the catalog's counter.
@Suite("Serials clients see")
struct ClientSerialsTests {
    static let key = TSIGKey(name: DNSName("vpc1-a.key")!, algorithm: .hmacSHA256, secret: SecretBytes(Array("secret-of-zone-a-secondary......".utf8)))
    static let now = UInt64(Date().timeIntervalSince1970)
    static let zoneAUnhealthy = ZoneHealth(unhealthy: [ENIID(endpoint: "ep-aff", zone: "eu-central-1a")])

    let engine: AnswerEngine
    init() throws { engine = try makeEngine() }

    func responder(_ serials: ViewSerials, _ clientSerials: ClientSerials, health: ZoneHealth = .allHealthy) -> Responder {
        let allow = [IPv4Prefix(network: IPv4Address("127.0.0.0")!, length: 8)!]
        let policy = TransferPolicy(grants: [
            Self.key.name: .init(key: Self.key, view: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), allowFrom: allow, secondaries: ["a"]),
        ])
        return Responder(engine: engine, health: health, transfers: .init(policy: policy, serials: serials), clientSerials: clientSerials)
    }

    /// The serial of the first SOA in the answer or authority section of `name` `type`, asked
    /// by a plain client of VPC 1 in `zone` (or of no VPC).
    func serial(_ responder: Responder, _ name: String = "privatelink.internal", _ type: RRType = .soa,
                vpc: String? = "vpc-1", zone: String? = "eu-central-1a") throws -> UInt32 {
        let bytes = try #require(respond(responder, queryMessage(name, type), vpc: vpc, zone: zone, source: "127.0.0.1"))
        let response = try #require(decode(bytes))
        let soa = try #require((response.answer + response.authority).first { $0.contains("\tSOA\t") || $0.contains(" SOA ") })
        let fields = soa.split(whereSeparator: { $0 == " " || $0 == "\t" })
        let at = try #require(fields.firstIndex(of: "SOA"))
        return try #require(UInt32(fields[at + 3]))
    }

    /// The serial a secondary of VPC 1 zone a reads (a signed SOA query).
    func signedSerial(_ responder: Responder) throws -> UInt32 {
        let (request, _) = TSIG.signRequest(queryMessage("privatelink.internal", .soa, edns: nil), key: Self.key, time: Self.now)
        let bytes = try #require(respond(responder, request, source: "127.0.0.1"))
        let soa = try #require(decode(bytes)?.answer.first)
        let fields = soa.split(whereSeparator: { $0 == " " || $0 == "\t" })
        let at = try #require(fields.firstIndex(of: "SOA"))
        return try #require(UInt32(fields[at + 3]))
    }

    @Test func aPlainSOAAndANegativeAnswerCarryTheViewsSerialTheSecondaryGets() throws {
        let serials = ViewSerials(clock: { 1_700_000_000 })
        let clientSerials = ClientSerials(serials: serials)
        let responder = responder(serials, clientSerials)
        #expect(engine.catalog.serial == 1)
        // The first question is answered at once, with a serial reserved for the view; its
        // content is worked out off the answering thread, which moves the serial one step on.
        #expect(try serial(responder) == 1_700_000_000)
        clientSerials.settle()
        #expect(try serial(responder) == 1_700_000_001)
        #expect(try serial(responder, "no-such-name.privatelink.internal", .a) == 1_700_000_001, "NXDOMAIN's SOA")
        #expect(try signedSerial(responder) == 1_700_000_001)
        // Clients of no VPC have a view of their own, with a serial of its own.
        #expect(try serial(responder, vpc: nil, zone: nil) == 1_700_000_000)
        clientSerials.settle()
        #expect(serials.current(ViewSerials.Key(view: .outside(zone: nil), apex: DNSName("privatelink.internal")!)) == 1_700_000_001)
        // A static zone keeps its file's serial.
        #expect(try serial(responder, "example.internal") == 2_026_112_701)
    }

    @Test func afterARestartTheSerialIsKeptOrGoesUpNeverBack() throws {
        // Before the restart: the clock is ahead of the one after it.
        let before = ViewSerials(clock: { 1_700_000_000 })
        let beforeClients = ClientSerials(serials: before)
        _ = try serial(responder(before, beforeClients))
        beforeClients.settle()
        let first = try serial(responder(before, beforeClients))
        // After it, with the same content: the same serial, though the clock went back and
        // the catalog's serial starts again at 1.
        let after = ViewSerials(initial: before.snapshot, clock: { 1_600_000_000 })
        let clientSerials = ClientSerials(serials: after)
        #expect(try serial(responder(after, clientSerials)) == first)
        // Content that changed while it was down (zone a's ENI unhealthy): the last serial
        // until the view is built again off the answering thread, then a greater one.
        let changed = responder(after, clientSerials, health: Self.zoneAUnhealthy)
        #expect(try serial(changed) == first)
        clientSerials.settle()
        let moved = try serial(changed)
        #expect(moved == first &+ 1, "\(first) → \(moved)")
        #expect(try signedSerial(changed) == moved, "the secondary reads the same serial")
        // A change that does not touch this view (zone b's clients keep their ENI) keeps it.
        _ = try serial(responder(after, clientSerials), zone: "eu-central-1b")
        clientSerials.settle()
        let zoneB = try serial(responder(after, clientSerials), zone: "eu-central-1b")
        _ = try serial(responder(after, clientSerials, health: Self.zoneAUnhealthy), zone: "eu-central-1b")
        clientSerials.settle()
        #expect(try serial(responder(after, clientSerials, health: Self.zoneAUnhealthy), zone: "eu-central-1b") == zoneB)
    }

    /// A question answered by an earlier responder after a later one was asked through (in
    /// flight across a reload or a health change) does not work out the old content again:
    /// the serial moves once for the change, not back and forth.
    @Test func anEarlierRespondersQuestionDoesNotMoveTheSerial() throws {
        let serials = ViewSerials(clock: { 1_700_000_000 })
        let clientSerials = ClientSerials(serials: serials)
        let healthy = responder(serials, clientSerials)
        _ = try serial(healthy)
        clientSerials.settle()
        let first = try serial(healthy)
        let changed = responder(serials, clientSerials, health: Self.zoneAUnhealthy)
        _ = try serial(changed)
        clientSerials.settle()
        let moved = try serial(changed)
        #expect(moved == first &+ 1, "\(first) → \(moved)")
        #expect(try serial(healthy) == moved, "the earlier responder's question gets the last serial")
        clientSerials.settle()
        #expect(try serial(changed) == moved, "not moved for the old content and back")
        #expect(serials.changes == 3, "the reservation, the first build, the change: nothing more")
    }
}
