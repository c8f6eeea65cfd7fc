import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// TSIG (RFC 8945) against a request Knot's kdig signed, and round trips of ZoneLink's own.
@Suite("TSIG")
struct TSIGTests {
    /// `kdig -y hmac-sha256:vpc1-a.key:em9uZWxpbmstdGVzdC1zZWNyZXQtMzItYnl0ZXMhISE= privatelink.internal SOA`
    /// as it reached a UDP socket (Knot DNS 3.x), signed at 1796150251.
    static let kdigRequest = hex(
        "7d89012000010000000000010b707269766174656c696e6b08696e7465726e616c000006000106767063312d61036b65790000fa00ff00000000003d0b686d61632d7368613235360000006b0f13eb012c002091e1e78e524f79be1eb583960515d77de7b785747cfd4ff64273ea1bbc681aca7d8900000000")
    static let kdigTime: UInt64 = 0x6b0f13eb
    static let key = TSIGKey(
        name: DNSName("vpc1-a.key")!, algorithm: .hmacSHA256, secret: SecretBytes(Array("zonelink-test-secret-32-bytes!!!".utf8)))

    func lookup(_ keys: TSIGKey...) -> (DNSName) -> TSIGKey? {
        { name in keys.first { $0.name == name } }
    }

    func record(_ message: [UInt8]) throws -> TSIGRecord {
        try #require(try TSIG.find(in: message).get())
    }

    @Test func kdigsRequestVerifies() throws {
        let found = try record(Self.kdigRequest)
        #expect(found.keyName == DNSName("vpc1-a.key") && found.algorithm == DNSName("hmac-sha256"))
        #expect(found.timeSigned == Self.kdigTime && found.fudge == 300 && found.mac.count == 32 && found.originalID == 0x7d89)
        guard case .valid(let key, _) = TSIG.verify(Self.kdigRequest, found, key: lookup(Self.key), now: Self.kdigTime) else {
            Issue.record("kdig's request did not verify")
            return
        }
        #expect(key == Self.key)
    }

    @Test func timeOutsideTheFudgeIsBADTIME() throws {
        let found = try record(Self.kdigRequest)
        for now in [Self.kdigTime - 300, Self.kdigTime + 300] {
            #expect(TSIG.verify(Self.kdigRequest, found, key: lookup(Self.key), now: now) == .valid(Self.key, found))
        }
        for now in [Self.kdigTime - 301, Self.kdigTime + 301, 0] {
            #expect(TSIG.verify(Self.kdigRequest, found, key: lookup(Self.key), now: now) == .badTime(Self.key, found))
        }
    }

    @Test func aChangedByteIsBADSIG() throws {
        // The ID is not among them: the MAC covers the original ID, which forwarders keep
        // while they rewrite the header's (RFC 8945 section 4.3.2).
        var rewrittenID = Self.kdigRequest
        rewrittenID[0] ^= 0x55
        let found = try record(rewrittenID)
        #expect(TSIG.verify(rewrittenID, found, key: lookup(Self.key), now: Self.kdigTime) == .valid(Self.key, found))
        for index in [2, 3, 5, 12, 20, 35] {  // flags, count, question, …
            var changed = Self.kdigRequest
            changed[index] ^= 0x01
            // A changed count no longer parses; every other change must fail the MAC.
            guard case .success(let found?) = TSIG.find(in: changed) else { continue }
            #expect(TSIG.verify(changed, found, key: lookup(Self.key), now: Self.kdigTime) == .badSig(found), "byte \(index)")
        }
    }

    @Test func anUnknownKeyOrAlgorithmIsBADKEY() throws {
        let found = try record(Self.kdigRequest)
        let other = TSIGKey(name: DNSName("other.key")!, algorithm: .hmacSHA256, secret: Self.key.secret)
        #expect(TSIG.verify(Self.kdigRequest, found, key: lookup(other), now: Self.kdigTime) == .badKey(found))
        let sha512 = TSIGKey(name: Self.key.name, algorithm: .hmacSHA512, secret: Self.key.secret)
        #expect(TSIG.verify(Self.kdigRequest, found, key: lookup(sha512), now: Self.kdigTime) == .badKey(found))
        let wrongSecret = TSIGKey(name: Self.key.name, algorithm: .hmacSHA256, secret: SecretBytes(Array("another".utf8)))
        #expect(TSIG.verify(Self.kdigRequest, found, key: lookup(wrongSecret), now: Self.kdigTime) == .badSig(found))
    }

    @Test func aTruncatedMACIsBADTRUNC() throws {
        var found = try record(Self.kdigRequest)
        found.mac = Array(found.mac.prefix(16))
        #expect(TSIG.verify(Self.kdigRequest, found, key: lookup(Self.key), now: Self.kdigTime) == .badTrunc(found))
    }

    @Test func signedRequestsRoundTripForEveryAlgorithm() throws {
        for algorithm in TSIGAlgorithm.allCases {
            let key = TSIGKey(name: DNSName("k.example")!, algorithm: algorithm, secret: SecretBytes(Array(repeating: 7, count: 32)))
            let (signed, mac) = TSIG.signRequest(queryMessage("privatelink.internal", .axfr, edns: nil), key: key, time: 1_000_000)
            #expect(mac.count == algorithm.macLength)
            let found = try record(signed)
            #expect(TSIG.verify(signed, found, key: lookup(key), now: 1_000_100) == .valid(key, found))
        }
    }

    @Test func aResponseChainVerifiesAgainstTheRequestMAC() throws {
        let (request, requestMAC) = TSIG.signRequest(queryMessage("privatelink.internal", .soa, edns: nil), key: Self.key, time: 5_000)
        var chain = TSIG.Chain(key: Self.key, requestMAC: requestMAC)
        var response = request
        response[2] |= 0x80
        response[10] = 0
        response[11] = 0
        response = Array(response[..<(12 + 26)])  // header + question
        let signed = chain.sign(response, originalID: 0x1234, time: 5_001)
        #expect(TSIG.verifyResponse(signed, key: Self.key, requestMAC: requestMAC, now: 5_002))
        #expect(!TSIG.verifyResponse(signed, key: Self.key, requestMAC: Array(repeating: 0, count: 32), now: 5_002))
        var tampered = signed
        tampered[3] ^= 1
        #expect(!TSIG.verifyResponse(tampered, key: Self.key, requestMAC: requestMAC, now: 5_002))
    }

    @Test func malformedMessagesAreRefusedNeverTrapped() throws {
        // Every prefix of a signed request, and every single-byte change, reads as something or fails cleanly.
        let message = Self.kdigRequest
        for length in 0..<message.count {
            _ = TSIG.find(in: Array(message.prefix(length)))
        }
        for index in message.indices {
            for value: UInt8 in [0x00, 0xC0, 0xFF, 0x3F] {
                var changed = message
                changed[index] = value
                if case .success(let found?) = TSIG.find(in: changed) {
                    _ = TSIG.verify(changed, found, key: lookup(Self.key), now: Self.kdigTime)
                }
            }
        }
        // A TSIG that is not the last record is malformed.
        var twice = message + Array(message[message.count - 83..<message.count])
        twice[11] = 2
        #expect(throws: MalformedMessage.self) { try TSIG.find(in: twice).get() }
        // Bytes after it too.
        #expect(throws: MalformedMessage.self) { try TSIG.find(in: message + [0]).get() }
        // A compression loop in its owner.
        var looped = message
        let owner = message.count - 83
        looped[owner] = 0xC0
        looped[owner + 1] = UInt8(owner)
        #expect(throws: MalformedMessage.self) { try TSIG.find(in: looped).get() }
    }
}

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}
