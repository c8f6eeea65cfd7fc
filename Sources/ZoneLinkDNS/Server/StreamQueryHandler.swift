import Logging
import NIOCore
import ZoneLinkCore
import ZoneLinkNetwork

/// Answers DNS queries on one TCP connection (RFC 7766): many per connection, in order,
/// each response behind its two-byte length. Closes the connection on a message that deserves
/// no answer (its peer is not a DNS client). `TCPFrameDecoder`, before it, frames the stream,
/// applies back-pressure and the deadlines.
final class StreamQueryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let publisher: ResponderPublisher
    private var responder: Responder
    private var generation = -1
    private let listener: ListenerContext
    private var counts = QueryCounts()
    /// The prepared answers of this connection's event loop, shared by its connections (one
    /// thread, so never by two at once).
    private let preparedBox: NIOLoopBoundBox<PreparedAnswers?>
    private var prepared: PreparedAnswers?

    init(publisher: ResponderPublisher, listener: ListenerContext, prepared: NIOLoopBoundBox<PreparedAnswers?>) {
        self.publisher = publisher
        self.responder = publisher.responder
        self.listener = listener
        self.preparedBox = prepared
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard PreparedAnswers.enabled else { return }
        if preparedBox.value == nil { preparedBox.value = PreparedAnswers.sizedFromCatalog() }
        prepared = preparedBox.value
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        publisher.refresh(&responder, seen: &generation)
        var output = context.channel.allocator.buffer(capacity: 514)
        output.writeInteger(UInt16(0))
        let source = context.channel.remoteAddress?.ipv4Endpoint?.address
        let outcome = message.withUnsafeReadableBytes { bytes in
            guard let prepared else {
                return responder.respond(to: bytes, listener: listener, source: source, transport: .tcp, into: &output)
            }
            prepared.follow(responder)
            return prepared.respond(to: bytes, listener: listener, source: source, transport: .tcp, responder: responder, into: &output)
        }
        switch outcome {
        case .answered:
            output.setInteger(UInt16(output.readableBytes - 2), at: output.readerIndex)
            counts.count(output, at: output.readerIndex + 2, view: listener.vpc)
            counts.flushIfDue()
            context.write(wrapOutboundOut(output), promise: nil)
        case .dropped:
            context.close(promise: nil)
        case .stream(let messages):
            // One write for all of them: the frame decoder counts one answer write per query.
            var framed = context.channel.allocator.buffer(capacity: messages.reduce(0) { $0 + $1.count + 2 })
            for message in messages {
                framed.writeInteger(UInt16(message.count))
                framed.writeBytes(message)
            }
            context.write(wrapOutboundOut(framed), promise: nil)
        case .forward(let query, let forwarder):
            // Answered when the upstream is; RFC 7766 section 7 lets responses overtake each other.
            let channel = context.channel
            forwarder.resolve(query, message: Array(message.readableBytesView), limit: 65535, client: source) { reply in
                var framed = channel.allocator.buffer(capacity: reply.readableBytes + 2)
                framed.writeInteger(UInt16(reply.readableBytes))
                framed.writeImmutableBuffer(reply)
                channel.writeAndFlush(framed, promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        counts.flushIfDue(force: true)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
