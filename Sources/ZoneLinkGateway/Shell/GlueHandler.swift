import NIOCore

/// One half of a relay between two TCP channels on the same event loop: what one side reads,
/// the other writes. It reads only while its partner can write (back-pressure), passes a
/// half-close on as a half-close (FIN for FIN), and closes its partner when its own channel goes.
///
/// `counted` hears how many bytes this side read: at most once a second while the flow is busy
/// (the NAT table's idle clock needs no finer grain) and once more when the channel closes, so a
/// short connection takes the table's lock once per side. Loop-bound, not Sendable.
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false
    private var bytesSinceReport = 0
    /// When bytes were last reported; the first read is reported at once.
    private var lastReport = ContinuousClock.now - .seconds(2)
    private let counted: (Int) -> Void

    private init(counted: @escaping (Int) -> Void) {
        self.counted = counted
    }

    static func matchedPair(
        countingFirst first: @escaping (Int) -> Void, second: @escaping (Int) -> Void
    ) -> (GlueHandler, GlueHandler) {
        let a = GlueHandler(counted: first)
        let b = GlueHandler(counted: second)
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    // MARK: What the partner asks of this side

    private func partnerWrite(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    /// The partner's peer sent FIN: send ours once everything it sent before is written. (Closing
    /// at once could drop those bytes: NIO turns an output close into a full one, failing
    /// pending writes, when the input is already closed.)
    private func partnerWriteEOF() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: written)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in
            handler.value.context?.close(mode: .output, promise: nil)
            handler.value.closeIfDone()
        }
    }

    /// Both directions finished: nothing more can cross this connection.
    private func closeIfDone() {
        if inputClosed && outputClosed { context?.close(promise: nil) }
    }

    private func partnerCloseFull() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private var partnerWritable: Bool {
        context?.channel.isWritable ?? false
    }

    // MARK: This side's events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesSinceReport += unwrapInboundIn(data).readableBytes
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        if bytesSinceReport > 0 {
            let now = ContinuousClock.now
            if now - lastReport >= .seconds(1) {
                lastReport = now
                report()
            }
        }
    }

    private func report() {
        guard bytesSinceReport > 0 else { return }
        counted(bytesSinceReport)
        bytesSinceReport = 0
    }

    func channelInactive(context: ChannelHandlerContext) {
        report()
        partner?.partnerCloseFull()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            inputClosed = true
            partner?.partnerWriteEOF()
            closeIfDone()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
