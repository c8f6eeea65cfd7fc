// Issue 2, tests 2 and 3: EDNS payload sizes and truncation; TCP per RFC 7766.
import Foundation
import Testing

private let big = "big.example.internal"
private let bigAddresses = (1...40).map { "127.1.0.\($0)" }.sorted()

@Suite("EDNS and truncation", .timeLimit(.minutes(3)))
struct EDNSTests {
    @Test("big.example.internal: TC over UDP without room, all 40 over TCP or with EDNS 4096 (dig)",
          .enabled(if: Tools.dig != nil, "dig (dnsutils) is not installed"))
    func digTruncation() async throws {
        try await withZoneLink(tag: "edns-dig") { server in
            let port = server.pinnedPort
            for options in [["+noedns"], ["+bufsize=512"]] {
                let (udp, r1) = try await runClient(.dig, name: big, type: "A", port: port, transport: .udp,
                                                    extra: options + ["+ignore"])
                #expect(udp?.tc == true && udp?.answer.isEmpty == true,
                        "dig \(options) over UDP: expected TC=1 and no answer records; got:\n\(r1.summary)")
                let (tcp, r2) = try await runClient(.dig, name: big, type: "A", port: port, transport: .tcp, extra: options)
                #expect(tcp?.tc == false && tcp?.rcode == "NOERROR" && tcp?.answerData("A") == bigAddresses,
                        "dig \(options) +tcp: expected all 40 A records, no TC; got:\n\(r2.summary)")
            }
            let (large, r3) = try await runClient(.dig, name: big, type: "A", port: port, transport: .udp,
                                                  extra: ["+bufsize=4096", "+ignore"])
            #expect(large?.tc == false && large?.answerData("A") == bigAddresses,
                    "dig +bufsize=4096 over UDP: expected all 40 A records, no TC; got:\n\(r3.summary)")
        }
    }

    @Test("big.example.internal: TC over UDP without room, all 40 over TCP or with EDNS 4096 (kdig)",
          .enabled(if: Tools.kdig != nil, "kdig (knot-dnsutils) is not installed"))
    func kdigTruncation() async throws {
        try await withZoneLink(tag: "edns-kdig") { server in
            let port = server.sourcePort
            let (udp, r1) = try await runClient(.kdig, name: big, type: "A", port: port, transport: .udp,
                                                extra: ["+noedns", "+ignore"])
            #expect(udp?.tc == true && udp?.answer.isEmpty == true,
                    "kdig +noedns over UDP: expected TC=1 and no answer records; got:\n\(r1.summary)")
            let (tcp, r2) = try await runClient(.kdig, name: big, type: "A", port: port, transport: .tcp, extra: ["+noedns"])
            #expect(tcp?.tc == false && tcp?.answerData("A") == bigAddresses,
                    "kdig +noedns +tcp: expected all 40 A records; got:\n\(r2.summary)")
            let (large, r3) = try await runClient(.kdig, name: big, type: "A", port: port, transport: .udp,
                                                  extra: ["+bufsize=4096", "+ignore"])
            #expect(large?.tc == false && large?.answerData("A") == bigAddresses,
                    "kdig +bufsize=4096 over UDP: expected all 40 A records, no TC; got:\n\(r3.summary)")
        }
    }

    @Test("Payload sizes on raw packets: none, 100, 512 truncate; 1232 and 4096 fit; TCP carries all")
    func rawPayloadSizes() async throws {
        try await withZoneLink(tag: "edns-raw") { server in
            let port = server.pinnedPort
            for (payload, expectTC) in [(UInt16?.none, true), (100, true), (512, true), (1232, false), (4096, false)] {
                let q = DNSQuery.build(id: 0x2000 + (payload ?? 0), name: big, type: RRType.A, edns: payload)
                let reply = try await DNSClient.udp(q, port: port)
                let r = reply.flatMap { DNSResponse.parse($0) }
                let label = payload.map { "EDNS payload \($0)" } ?? "no EDNS"
                guard let r, let reply else {
                    Issue.record("\(label): no reply or unparsable")
                    continue
                }
                if expectTC {
                    #expect(r.tc && r.answer.isEmpty && r.question.count == 1 && reply.count <= 512,
                            "\(label) over UDP: expected TC=1 with the question only, ≤ 512 bytes; got \(reply.count) bytes\n\(r)")
                    #expect(r.hasOPT == (payload != nil), "\(label): OPT in the response iff in the query; got hasOPT=\(r.hasOPT)")
                } else {
                    #expect(!r.tc && r.rcode == Rcode.NOERROR && r.answerData("A") == bigAddresses && r.aa,
                            "\(label) over UDP: expected all 40 A records, no TC; got\n\(r)")
                }
                let viaTCP = try await DNSClient.tcp(q, port: port).flatMap { DNSResponse.parse($0) }
                #expect(viaTCP?.tc == false && viaTCP?.answerData("A") == bigAddresses,
                        "\(label) over TCP: expected all 40 A records; got \(viaTCP.map { "\($0)" } ?? "nothing")")
            }
        }
    }
}

@Suite("TCP (RFC 7766)", .timeLimit(.minutes(3)))
struct TCPTests {
    @Test("Pipelined queries in one write are all answered, in order, on the same connection")
    func pipelining() async throws {
        try await withZoneLink(tag: "tcp-pipe") { server in
            let port = server.sourcePort
            let names: [(String, UInt16)] = [
                (Names.endpointZoneA, RRType.A), ("www.example.internal", RRType.A), (big, RRType.A),
                (Names.unknownEndpoint, RRType.A), (Names.domain, RRType.SOA), ("api.example.internal", RRType.A),
                ("example.com", RRType.A), (Names.endpointZoneB, RRType.A),
            ]
            let queries = names.enumerated().map { i, q in DNSQuery.build(id: UInt16(0x3100 + i), name: q.0, type: q.1) }
            let replies: [[UInt8]?] = try await offload {
                let client = try TCPClient(port: port)
                defer { client.close_() }
                guard client.write(queries.flatMap { TCPClient.framed($0) }) else { return [] }
                var out: [[UInt8]?] = []
                for _ in queries { out.append(client.readMessage(timeout: 5)) }
                // A second round on the same connection, one query at a time.
                for q in queries.prefix(2) {
                    var again = q
                    again[0] = 0x77
                    guard client.write(TCPClient.framed(again)) else { out.append(nil); continue }
                    out.append(client.readMessage(timeout: 5))
                }
                return out
            }
            #expect(replies.count == queries.count + 2, "expected \(queries.count + 2) replies on one connection, got \(replies.count)")
            let ids = replies.map { r in r.flatMap { DNSResponse.parse($0) }.map { $0.id } }
            let expectedIDs = queries.map { UInt16($0[0]) << 8 | UInt16($0[1]) } + queries.prefix(2).map { 0x7700 | UInt16($0[1]) }
            #expect(ids == expectedIDs.map { Optional($0) },
                    "IDs of the answers, in order: expected \(expectedIDs.map { String($0, radix: 16) }), got \(ids.map { $0.map { String($0, radix: 16) } ?? "none" })")
            if let first = replies.first.flatMap({ $0 }).flatMap({ DNSResponse.parse($0) }) {
                #expect(first.answerData("A") == [Names.eniA], "first pipelined answer: \(first)")
            }
            if replies.count > 2, let bigReply = replies[2].flatMap({ DNSResponse.parse($0) }) {
                #expect(bigReply.answerData("A").count == 40 && !bigReply.tc, "big over TCP (no EDNS) must carry all 40: \(bigReply)")
            }
        }
    }

    @Test("An idle connection is closed after about 10 s")
    func idleTimeout() async throws {
        try await withZoneLink(tag: "tcp-idle") { server in
            let port = server.pinnedPort
            let (idle, afterQuery): (Double?, Double?) = try await offload {
                let a = try TCPClient(port: port)
                let b = try TCPClient(port: port)
                defer { a.close_(); b.close_() }
                // b asks once, then stays idle: the idle timer runs from the last activity.
                let q = DNSQuery.build(id: 0x4242, name: "www.example.internal", type: RRType.A)
                guard b.write(TCPClient.framed(q)), b.readMessage(timeout: 5) != nil else { return (nil, -1) }
                let start = monotonicNow()
                let ta = a.waitForClose(timeout: 15)
                let tb = b.waitForClose(timeout: max(0.5, 15 - (monotonicNow() - start)))
                return (ta, tb)
            }
            #expect(afterQuery != -1, "the query on the second connection was not answered")
            guard let idle else {
                Issue.record("an idle TCP connection was not closed by the server within 15 s (contract: 10 s)")
                return
            }
            #expect(idle >= 8 && idle <= 15, "idle connection closed after \(idle) s, expected about 10 s")
            #expect(afterQuery != nil, "a connection idle after one answered query was not closed within 15 s")
        }
    }
}
