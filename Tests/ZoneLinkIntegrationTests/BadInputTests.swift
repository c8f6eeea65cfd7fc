// Issue 2, test 5: random and mutated input over UDP and TCP must neither crash the server nor
// draw anything but well-formed responses (QR=1).
import Foundation
import ZoneLinkTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum Mutator {
    static let validNames = [Names.endpointZoneA, Names.endpoint, "www.example.internal", "big.example.internal",
                             "x.apps.example.internal", "host.lab.example.internal", Names.domain, "example.com"]

    static func bytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func validQuery(_ rng: inout SplitMix64) -> [UInt8] {
        let name = validNames[Int.random(in: 0..<validNames.count, using: &rng)]
        let types: [UInt16] = [1, 2, 5, 6, 15, 16, 28, 255, UInt16.random(in: 0...0xFFFF, using: &rng)]
        let edns: UInt16? = Bool.random(using: &rng) ? UInt16.random(in: 0...0xFFFF, using: &rng) : nil
        return DNSQuery.build(id: UInt16.random(in: 0...0xFFFF, using: &rng), name: name,
                              type: types[Int.random(in: 0..<types.count, using: &rng)],
                              rd: Bool.random(using: &rng), edns: edns)
    }

    static func id(_ rng: inout SplitMix64) -> UInt16 { UInt16.random(in: 0...0xFFFF, using: &rng) }

    /// A TSIG record (RFC 8945) for `key`, with a MAC of `macSize` random bytes claimed and
    /// `macBytes` present: a forged, truncated or oversized signature.
    static func tsig(key: String, macSize: UInt16, macBytes: Int, _ rng: inout SplitMix64) -> [UInt8] {
        var rdata = DNSQuery.encodeName("hmac-sha256")
        let now = UInt64(Date().timeIntervalSince1970)
        rdata += (0..<6).map { UInt8(truncatingIfNeeded: now >> (40 - 8 * $0)) } + [0x01, 0x2C]
        rdata += [UInt8(macSize >> 8), UInt8(macSize & 0xFF)] + bytes(macBytes, &rng) + [0x12, 0x34, 0, 0, 0, 0]
        let length = UInt16(rdata.count)
        return DNSQuery.encodeName(key) + [0, 250, 0, 255, 0, 0, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF)] + rdata
    }

    /// Zone transfer requests and signed queries gone wrong (issue 8).
    static func transfer(_ rng: inout SplitMix64) -> (kind: String, bytes: [UInt8]) {
        let type: UInt16 = [252, 251, 6][Int.random(in: 0..<3, using: &rng)]
        var q = DNSQuery.header(id: id(&rng), ar: 1) + DNSQuery.encodeName(Names.domain) + [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        let key = ["nsd.key", "knot.key", "stranger.key"][Int.random(in: 0..<3, using: &rng)]
        switch Int.random(in: 0..<7, using: &rng) {
        case 0:
            q += tsig(key: key, macSize: 32, macBytes: 32, &rng)
            return ("forged TSIG", q)
        case 1:
            q += tsig(key: key, macSize: UInt16.random(in: 0...64, using: &rng), macBytes: Int.random(in: 0...64, using: &rng), &rng)
            return ("TSIG MAC size wrong", q)
        case 2:
            let record = tsig(key: key, macSize: 32, macBytes: 32, &rng)
            q += record.prefix(Int.random(in: 0..<record.count, using: &rng))
            return ("TSIG cut short", q)
        case 3:
            q[11] = 2
            q += tsig(key: key, macSize: 32, macBytes: 32, &rng) + DNSQuery.opt(payload: 1232)
            return ("TSIG not last", q)
        case 4:
            // IXFR with a SOA in authority whose serial is anything, possibly ahead of ours.
            var ixfr = DNSQuery.header(id: id(&rng), ns: 1, ar: Bool.random(using: &rng) ? 1 : 0)
                + DNSQuery.encodeName(Names.domain) + [0, 251, 0, 1]
            ixfr += [0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0] + bytes(20, &rng)
            if ixfr[11] == 1 { ixfr += tsig(key: key, macSize: 32, macBytes: 32, &rng) }
            return ("IXFR", Array(ixfr.prefix(Int.random(in: 12...ixfr.count, using: &rng))))
        case 5:
            // NOTIFY from a stranger (RFC 1996), signed or not.
            var notify = DNSQuery.header(id: id(&rng), opcode: 4, an: 1, ar: 1) + DNSQuery.encodeName(Names.domain) + [0, 6, 0, 1]
            notify += [0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0] + bytes(20, &rng)
            notify += tsig(key: key, macSize: 32, macBytes: 32, &rng)
            return ("NOTIFY", notify)
        default:
            var unsigned = q
            unsigned[11] = 0
            return ("unsigned transfer", unsigned)
        }
    }

    /// One hostile datagram; `kind` names its family for statistics.
    static func datagram(_ rng: inout SplitMix64) -> (kind: String, bytes: [UInt8]) {
        let roll = Int.random(in: 0..<18, using: &rng)
        switch roll {
        case 0:
            return ("random", bytes(Int.random(in: 0...600, using: &rng), &rng))
        case 1:
            let q = validQuery(&rng)
            return ("short header", Array(q.prefix(Int.random(in: 0...11, using: &rng))))
        case 2:
            let q = validQuery(&rng)
            return ("truncated", Array(q.prefix(Int.random(in: 12..<q.count, using: &rng))))
        case 3:
            var m = DNSQuery.header(id: id(&rng))
            m += [UInt8.random(in: 1...63, using: &rng)] + bytes(Int.random(in: 0...20, using: &rng), &rng)
            return ("label past end", m)
        case 4:
            var m = DNSQuery.header(id: id(&rng))
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: m += [0xC0, 0x0C, 0, 1, 0, 1]                          // points at itself
            case 1: m += [0xC0, 0x0E, 0xC0, 0x0C, 0, 1, 0, 1]              // two pointers, a loop
            case 2: m += [3, 0x77, 0x77, 0x77, 0xC0, 0x0C, 0, 1, 0, 1]     // label then back to start
            default: m += [0xC0, UInt8.random(in: 0...255, using: &rng), 0, 1, 0, 1]  // anywhere
            }
            return ("pointer loop", m)
        case 5:
            var m = DNSQuery.header(id: id(&rng), qd: 0)
            if Bool.random(using: &rng) { m += DNSQuery.encodeName("www.example.internal") + [0, 1, 0, 1] }
            return ("qdcount 0", m)
        case 6:
            let qd = Bool.random(using: &rng) ? 2 : UInt16.random(in: 2...0xFFFF, using: &rng)
            var m = DNSQuery.header(id: id(&rng), qd: qd)
            for _ in 0..<Int.random(in: 1...2, using: &rng) { m += DNSQuery.encodeName("www.example.internal") + [0, 1, 0, 1] }
            return ("qdcount 2+", m)
        case 7:
            var cls = UInt16.random(in: 0...0xFFFF, using: &rng)
            if cls == 1 { cls = 3 }
            return ("wrong class", DNSQuery.build(id: id(&rng), name: "www.example.internal", type: 1, qclass: cls))
        case 8:
            var q = validQuery(&rng)
            q[2] |= 0x80
            return ("QR set", q)
        case 9:
            var q = validQuery(&rng)
            for i in 6..<12 where Bool.random(using: &rng) { q[i] = 0xFF }
            return ("huge counts", q)
        case 10:
            var q = DNSQuery.build(id: id(&rng), name: "www.example.internal", type: 1)
            q[11] = UInt8.random(in: 1...3, using: &rng)   // arcount
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: q += DNSQuery.opt(payload: 1232) + DNSQuery.opt(payload: 4096)       // two OPTs
            case 1: q += [3, 0x66, 0x6F, 0x6F, 0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]      // OPT with a name
            case 2: q += DNSQuery.opt(payload: 1232).dropLast(2) + [0x10, 0x00]          // rdlength past end
            case 3: q += DNSQuery.opt(payload: 1232, rdata: [0, 10, 0, 40, 1, 2, 3])     // option past rdata
            case 4: q += Array(DNSQuery.opt(payload: 1232).prefix(Int.random(in: 1...10, using: &rng)))
            default:
                q[7] = 1; q[11] = 0                                                     // OPT in the answer section
                q += DNSQuery.opt(payload: 1232)
            }
            return ("bad OPT", q)
        case 11:
            var q = validQuery(&rng)
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let bit = Int.random(in: 0..<(q.count * 8), using: &rng)
                q[bit / 8] ^= UInt8(1 << (bit % 8))
            }
            return ("bit flips", q)
        case 12:
            var q = validQuery(&rng)
            q[2] = (q[2] & 0x87) | (UInt8.random(in: 1...15, using: &rng) << 3)
            return ("opcode", q)
        case 13:
            var m = DNSQuery.header(id: id(&rng))
            m += [UInt8.random(in: 0x40...0xBF, using: &rng)] + bytes(Int.random(in: 0...10, using: &rng), &rng) + [0, 0, 1, 0, 1]
            return ("reserved label type", m)
        case 14:
            var m = DNSQuery.header(id: id(&rng))
            for _ in 0..<Int.random(in: 5...9, using: &rng) { m += [63] + Array(repeating: 0x61, count: 63) }
            m += [0, 0, 1, 0, 1]
            return ("name > 255", m)
        case 15, 16:
            return transfer(&rng)
        default:
            return ("valid", validQuery(&rng))
        }
    }

    struct Outcome: Sendable {
        var sent = 0
        var sendFailures = 0
        var replies = 0
        var bad: [String] = []
        var kinds: [String: Int] = [:]
    }

    /// Sends `count` datagrams in batches, draining replies without waiting for each one.
    static func flood(port: UInt16, count: Int, seed: UInt64) throws -> Outcome {
        var rng = SplitMix64(seed: seed)
        let client = try UDPClient(receiveBuffer: 8 << 20)
        var outcome = Outcome()
        func check(_ replies: [[UInt8]]) {
            for r in replies {
                outcome.replies += 1
                if r.count < 12 || r[2] & 0x80 == 0, outcome.bad.count < 20 {
                    outcome.bad.append("reply of \(r.count) bytes without a DNS response header: \(Array(r.prefix(24)))")
                }
            }
        }
        let batch = 200
        var i = 0
        while i < count {
            for _ in 0..<min(batch, count - i) {
                let (kind, bytes) = datagram(&rng)
                outcome.kinds[kind, default: 0] += 1
                if client.send(bytes, port: port) { outcome.sent += 1 } else { outcome.sendFailures += 1 }
                i += 1
            }
            _ = client.receive(timeout: 0.002).map { check([$0]) }
            check(client.drain())
        }
        // Late replies, bounded.
        let deadline = monotonicNow() + 1.5
        while monotonicNow() < deadline, let r = client.receive(timeout: 0.3) { check([r]) }
        return outcome
    }
}

@Suite("Bad input", .timeLimit(.minutes(3)))
struct BadInputTests {
    @Test("20,000 hostile datagrams over UDP, then hostile TCP streams: still alive, still answering")
    func hostileInput() async throws {
        // With secondaries configured, so that transfer requests reach the TSIG code.
        try await withZoneLink(tag: "fuzz", mutate: SecondaryFixture.withInlineSecondaries) { server in
            let port = server.sourcePort
            let outcome = try await offload { try Mutator.flood(port: port, count: 20_000, seed: 0xF022_0002) }
            #expect(outcome.sent >= 19_000, "only \(outcome.sent) of 20000 datagrams could be sent (\(outcome.sendFailures) failed)")
            #expect(outcome.bad.isEmpty, "malformed replies:\n\(outcome.bad.joined(separator: "\n"))")
            #expect(outcome.replies > 0, "no reply at all to 20000 datagrams (a fifth of them valid queries)")
            try await Self.expectHealthy(server, after: "the UDP flood (\(outcome.kinds))")

            // TCP: broken streams, each on its own connection.
            let tcpProblems: [String] = try await offload {
                var rng = SplitMix64(seed: 0x7C90_0002)
                var problems: [String] = []
                let valid = DNSQuery.build(id: 0x5A5A, name: "www.example.internal", type: RRType.A)
                let streams: [(String, [UInt8], Bool)] = [
                    ("prefix 60000 then close", [0xEA, 0x60], false),
                    ("prefix 60000, 100 bytes, close", [0xEA, 0x60] + Mutator.bytes(100, &rng), false),
                    ("prefix 65535 and 2000 bytes", [0xFF, 0xFF] + Mutator.bytes(2000, &rng), false),
                    ("prefix 0", [0, 0], true),
                    ("prefix 0 then a valid query", [0, 0] + TCPClient.framed(valid), true),
                    ("prefix 300 with 50 bytes then close", [0x01, 0x2C] + Mutator.bytes(50, &rng), false),
                    ("garbage 1000 bytes", Mutator.bytes(1000, &rng), true),
                    ("one prefix byte", [0x00], false),
                    ("framed random message", TCPClient.framed(Mutator.bytes(40, &rng)), true),
                    ("framed short header", TCPClient.framed([0x12, 0x34, 0x01]), true),
                    ("framed QR=1", TCPClient.framed({ var q = valid; q[2] |= 0x80; return q }()), true),
                    ("framed pointer loop", TCPClient.framed(DNSQuery.header(id: 9) + [0xC0, 0x0C, 0, 1, 0, 1]), true),
                ] + (0..<40).map { i in
                    let (kind, bytes) = Mutator.transfer(&rng)
                    return ("framed \(kind) #\(i)", TCPClient.framed(bytes), true)
                }
                for (label, bytes, readBack) in streams {
                    guard let c = try? TCPClient(port: port) else {
                        problems.append("\(label): connect failed")
                        continue
                    }
                    c.write(bytes)
                    if readBack {
                        // Whatever comes back before the server closes (or 1 s passes) must be well formed.
                        let deadline = monotonicNow() + 1
                        while monotonicNow() < deadline, let msg = c.readMessage(timeout: deadline - monotonicNow()) {
                            if msg.count < 12 || msg[2] & 0x80 == 0 {
                                problems.append("\(label): reply without a DNS response header: \(Array(msg.prefix(24)))")
                            }
                        }
                    }
                    c.close_()
                }
                // Many connections opened and dropped at once.
                var open: [TCPClient] = []
                for _ in 0..<50 { if let c = try? TCPClient(port: port) { open.append(c) } }
                for c in open { c.write([0x00, 0x40, 0x12]); c.close_() }
                return problems
            }
            #expect(tcpProblems.isEmpty, "\(tcpProblems.joined(separator: "\n"))")
            try await Self.expectHealthy(server, after: "the hostile TCP streams")
        }
    }

    static func expectHealthy(_ server: ZoneLinkServer, after: String) async throws {
        #expect(server.isRunning, "zonelink serve died after \(after).\n\(server.logs)")
        guard server.isRunning else { return }
        let q = DNSQuery.build(id: 0x0BEE, name: Names.endpointZoneA, type: RRType.A)
        // Asked as a stub resolver would: UDP may lose a datagram while the server drains what
        // the flood left in its socket, so up to five tries of 3 s.
        var udp: DNSResponse?
        for _ in 0..<5 where udp == nil {
            udp = try await DNSClient.udp(q, port: server.sourcePort, timeout: 3).flatMap { DNSResponse.parse($0) }
        }
        #expect(udp?.rcode == Rcode.NOERROR && udp?.answerData("A") == [Names.eniA],
                "after \(after), a valid UDP query was not answered correctly: \(udp.map { "\($0)" } ?? "no reply")")
        let tcp = try await DNSClient.tcp(q, port: server.sourcePort).flatMap { DNSResponse.parse($0) }
        #expect(tcp?.rcode == Rcode.NOERROR && tcp?.answerData("A") == [Names.eniA],
                "after \(after), a valid TCP query was not answered correctly: \(tcp.map { "\($0)" } ?? "no reply")")
    }
}
