import NIOCore
import NIOEmbedded
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// The pure pieces behind the TCP and forwarding limits, and the TCP framer's back-pressure on
/// an embedded channel (no sockets, no clock).
@Suite("Client limits")
struct ClientLimitTests {
    let a = IPv4Address("10.0.0.1")!
    let b = IPv4Address("10.0.0.2")!

    @Test func aQuotaBoundsTheTotalAndEachClient() {
        var quota = ClientQuota(total: 3, perClient: 2)
        #expect(quota.take(for: a) == nil && quota.take(for: a) == nil)
        #expect(quota.take(for: a) == .perClient)
        #expect(quota.take(for: b) == nil)
        #expect(quota.take(for: b) == .total && quota.taken == 3)
        quota.release(for: a)
        #expect(quota.take(for: b) == nil && quota.taken(by: b) == 2)
    }

    @Test func aQuotaForgetsClientsThatLeft() {
        var quota = ClientQuota(total: 1000, perClient: 10)
        for host in 0..<500 { _ = quota.take(for: IPv4Address(0x0A00_0000 + UInt32(host))) }
        #expect(quota.clients == 500)
        for host in 0..<500 { quota.release(for: IPv4Address(0x0A00_0000 + UInt32(host))) }
        #expect(quota.clients == 0 && quota.taken == 0)
    }

    @Test func newLimitsKeepWhatIsTaken() {
        var quota = ClientQuota(total: 10, perClient: 5)
        for _ in 0..<4 { _ = quota.take(for: a) }
        var smaller = quota.withLimits(total: 10, perClient: 3)
        #expect(smaller.taken(by: a) == 4 && smaller.take(for: a) == .perClient)
        smaller.release(for: a)
        smaller.release(for: a)
        #expect(smaller.take(for: a) == nil)
    }

    @Test func trickledBytesResetNoDeadline() {
        var deadlines = StreamDeadlines(idleTimeout: .seconds(10), messageTimeout: .seconds(2), openedAt: .seconds(100))
        #expect(deadlines.expired(at: .seconds(109)) == nil && deadlines.expired(at: .seconds(110)) == .idle)
        // The first byte of a message starts its deadline; more bytes do not move it.
        deadlines.partialMessage(true, at: .seconds(101))
        deadlines.partialMessage(true, at: .seconds(102))
        #expect(deadlines.next.at == .seconds(103) && deadlines.expired(at: .seconds(103)) == .message)
        // The whole query arrives: idle counts from there.
        deadlines.queryReceived(at: .milliseconds(102_500))
        deadlines.partialMessage(false, at: .milliseconds(102_500))
        #expect(deadlines.expired(at: .seconds(110)) == nil && deadlines.next == (.milliseconds(112_500), .idle))
        deadlines.answerWritten(at: .seconds(104))
        #expect(deadlines.next.at == .seconds(114))
    }

    /// Hands messages on and writes nothing back until told.
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var messages: [ByteBuffer] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            messages.append(unwrapInboundIn(data))
        }
    }

    /// Counts the reads the channel is asked for.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    @Test func framesPastTheQueueWaitAndNoReadHappens() throws {
        let channel = EmbeddedChannel()
        let reads = ReadCounter()
        let collector = Collector()
        try channel.pipeline.syncOperations.addHandlers([
            reads, TCPFrameDecoder(queueLimit: 4, idleTimeout: .seconds(60), messageTimeout: .seconds(60)), collector,
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 53)).wait()
        var stream = ByteBuffer()
        for id in 0..<10 {
            let message = queryMessage("q\(id).example.internal", .a, id: UInt16(id), edns: nil)
            stream.writeInteger(UInt16(message.count))
            stream.writeBytes(message)
        }
        stream.writeBytes([0x00])  // the first byte of an eleventh
        try channel.writeInbound(stream)
        #expect(collector.messages.count == 4)
        let before = reads.reads
        channel.read()
        #expect(reads.reads == before, "read while four answers are queued")
        // Each answer written makes room for one more message.
        for _ in 0..<6 {
            try channel.writeAndFlush(ByteBuffer(bytes: [0, 2, 0xAB, 0xCD])).wait()
        }
        #expect(collector.messages.count == 10)
        #expect(collector.messages.map { $0.getInteger(at: 0, as: UInt16.self)! } == (0..<10).map(UInt16.init))
        // Four still queued: still no read.
        #expect(reads.reads == before)
        for _ in 0..<4 { try channel.writeAndFlush(ByteBuffer(bytes: [0, 2, 0xAB, 0xCD])).wait() }
        #expect(reads.reads == before + 1, "the held read is passed on once there is room")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
