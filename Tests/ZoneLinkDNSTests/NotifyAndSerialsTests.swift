import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// NOTIFY messages and their acknowledgements, and serials kept across restarts (issue 8).
@Suite("NOTIFY and persisted serials")
struct NotifyAndSerialsTests {
    static let key = TSIGKey(name: DNSName("nsd.key")!, algorithm: .hmacSHA256, secret: SecretBytes(Array("notify-test-secret".utf8)))
    static let soa = TransferRecord(
        owner: DNSName("privatelink.internal")!, type: .soa, ttl: 60,
        rdata: DNSName("ns.privatelink.internal")!.wire + DNSName("hostmaster.privatelink.internal")!.wire + Array(repeating: 1, count: 20))

    /// What a secondary answers: the NOTIFY echoed with QR, signed over its MAC.
    func acknowledgement(of notify: [UInt8], mac: [UInt8], rcode: UInt8 = 0, key: TSIGKey = key) -> [UInt8] {
        let record = try! TSIG.find(in: notify).get()!
        var response = Array(notify[..<record.start])
        response[2] |= 0x80
        response[3] = response[3] & 0xF0 | rcode
        response[6] = 0
        response[7] = 0
        response[11] = 0
        response = Array(response[..<(12 + DNSName("privatelink.internal")!.wire.count + 4)])
        var chain = TSIG.Chain(key: key, requestMAC: mac)
        return chain.sign(response, originalID: record.originalID, time: 2_000)
    }

    @Test func aNotifyIsOpcode4WithTheSOAAndSigned() throws {
        let (message, mac) = NotifyMessage.signed(id: 0x4242, zone: DNSName("privatelink.internal")!, soa: Self.soa, key: Self.key, time: 2_000)
        let decoded = try #require(decode(message))
        #expect(message[2] >> 3 & 0x0F == 4 && decoded.aa && decoded.qdcount == 1)
        #expect(decoded.answer.count == 1 && decoded.answer[0].contains("SOA"))
        let record = try #require(try TSIG.find(in: message).get())
        #expect(TSIG.verify(message, record, key: { $0 == Self.key.name ? Self.key : nil }, now: 2_000) == .valid(Self.key, record))
        #expect(mac == record.mac)
    }

    @Test func onlyASignedMatchingAnswerAcknowledges() throws {
        let (message, mac) = NotifyMessage.signed(id: 7, zone: DNSName("privatelink.internal")!, soa: Self.soa, key: Self.key, time: 2_000)
        #expect(NotifyMessage.isAcknowledgement(acknowledgement(of: message, mac: mac), id: 7, key: Self.key, requestMAC: mac, now: 2_010))
        #expect(!NotifyMessage.isAcknowledgement(acknowledgement(of: message, mac: mac), id: 8, key: Self.key, requestMAC: mac, now: 2_010))
        #expect(!NotifyMessage.isAcknowledgement(acknowledgement(of: message, mac: mac, rcode: 5), id: 7, key: Self.key, requestMAC: mac, now: 2_010))
        let stranger = TSIGKey(name: Self.key.name, algorithm: .hmacSHA256, secret: SecretBytes([1]))
        #expect(!NotifyMessage.isAcknowledgement(acknowledgement(of: message, mac: mac, key: stranger), id: 7, key: Self.key, requestMAC: mac, now: 2_010))
        let unsigned = Array(acknowledgement(of: message, mac: mac)[..<(12 + 26)])
        #expect(!NotifyMessage.isAcknowledgement(unsigned, id: 7, key: Self.key, requestMAC: mac, now: 2_010))
        #expect(!NotifyMessage.isAcknowledgement(acknowledgement(of: message, mac: mac), id: 7, key: Self.key, requestMAC: mac, now: 9_000))
        for length in 0..<message.count { _ = NotifyMessage.isAcknowledgement(Array(message.prefix(length)), id: 7, key: Self.key, requestMAC: mac, now: 2_000) }
    }

    @Test func retriesBackOffToAMinute() {
        #expect((0..<9).map(NotifyMessage.backoff) == [1, 2, 4, 8, 16, 32, 60, 60, 60])
    }

    @Test func serialsSurviveARestartAndOnlyGoUp() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("view-serials-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = ViewSerialsFile(path: dir.appendingPathComponent("view-serials.json").path)
        #expect(try file.load().get().isEmpty, "no file yet: no serials")
        let key = ViewSerials.Key(view: ViewKey(vpc: "vpc-1", zone: "eu-central-1a"), apex: DNSName("privatelink.internal")!)
        let content = [UInt8](repeating: 1, count: 32), changed = [UInt8](repeating: 2, count: 32)

        // Many changes in one second run the serial ahead of the clock (1000 → 1003).
        let first = ViewSerials(clock: { 1_000 }, onChange: { try? file.save($0, generation: $1) })
        for digest in [content, changed, content, changed] { _ = first.serial(for: key, digest: digest) }
        #expect(first.serial(for: key, digest: changed) == 1_003)

        // Restarted with the clock still behind: the same content keeps its serial; a change goes up.
        let reopened = ViewSerialsFile(path: file.path)
        let second = ViewSerials(initial: try reopened.load().get(), clock: { 1_001 }, onChange: { try? reopened.save($0, generation: $1) })
        #expect(second.serial(for: key, digest: changed) == 1_003)
        let update = second.update(key, digest: content)
        #expect(update.serial == 1_004 && update.changed)
        #expect(try reopened.load().get()[key]?.serial == 1_004)
        // An older snapshot arriving late is not written over a newer one.
        try reopened.save([key: .init(digest: changed, serial: 5)], generation: 0)
        #expect(try reopened.load().get()[key]?.serial == 1_004)
    }

    @Test func aDamagedFileIsReportedNotTrusted() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("view-serials-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("view-serials.json").path
        for text in ["not json", "[{\"vpc\": \"v\", \"apex\": \"a..b\", \"serial\": 1, \"digest\": \"00\"}]",
                     "[{\"vpc\": \"v\", \"apex\": \"a\", \"serial\": 1, \"digest\": \"zz\"}]"] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            guard case .failure(let error) = ViewSerialsFile(path: path).load() else {
                Issue.record("\(text) was accepted")
                continue
            }
            #expect(error.description.contains(path))
        }
    }
}
