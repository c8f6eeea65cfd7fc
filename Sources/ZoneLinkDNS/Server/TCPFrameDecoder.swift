import NIOCore

/// Splits a DNS-over-TCP byte stream into messages, each preceded by its length in two bytes
/// (RFC 1035 section 4.2.2), and keeps one connection from holding more than its share.
///
/// - Back-pressure: at most `queueLimit` messages are handed on whose answers are not yet
///   written to the socket. At the limit, or while the channel is not writable, no message is
///   handed on and the socket is not read (NIO `read()` is held back), so a client that
///   pipelines queries and never reads its answers holds a bounded amount of memory, and the
///   kernel's buffers push back on it. Every message handed on gets exactly one answer write
///   (or the connection is closed): the count goes down when that write completes.
/// - Bounded input: only bytes of messages not yet handed on are kept, at most one whole
///   message plus what one read brings; the buffer is let go when it empties.
/// - Deadlines (`StreamDeadlines`): closed when idle `idleTimeout` after the last whole query or
///   answer, and `messageTimeout` after the first byte of a message that has not arrived in
///   full. Trickling bytes reset neither.
final class TCPFrameDecoder: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The most one message and its length take.
    static let largestFrame = 2 + 65_535

    private let queueLimit: Int
    private let idleTimeout: Duration
    private let messageTimeout: Duration
    private var input: ByteBuffer?
    /// Messages handed on whose answer is not written yet.
    private var queued = 0
    /// A `read()` held back by back-pressure, to be passed on when there is room again.
    private var readHeld = false
    private var deadlines: StreamDeadlines?
    private var timer: Scheduled<Void>?
    private var timerAt: Duration?
    private var context: ChannelHandlerContext?
    private let origin = NIODeadline.now()

    init(queueLimit: Int, idleTimeout: Duration, messageTimeout: Duration) {
        self.queueLimit = max(1, queueLimit)
        self.idleTimeout = idleTimeout
        self.messageTimeout = messageTimeout
    }

    /// The next whole message in `buffer` (moving past it), or nil when it has not all arrived.
    static func nextFrame(_ buffer: inout ByteBuffer) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length)
        else { return nil }
        buffer.moveReaderIndex(forwardBy: 2)
        return buffer.readSlice(length: Int(length))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        deadlines = StreamDeadlines(idleTimeout: idleTimeout, messageTimeout: messageTimeout, openedAt: now)
        armTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timer?.cancel()
        timer = nil
        input = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if input == nil {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        // A held-back read never lets more than one message and one read in.
        if let input, input.readableBytes > 2 * Self.largestFrame {
            context.close(promise: nil)
            return
        }
        deliver(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if hasRoom(context: context) {
            context.read()
        } else {
            readHeld = true
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] _ in answerDone() }
        context.write(data, promise: written)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { resume(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        input = nil
        context.fireChannelInactive()
    }

    private var now: Duration {
        .nanoseconds(NIODeadline.now().uptimeNanoseconds - origin.uptimeNanoseconds)
    }

    private func hasRoom(context: ChannelHandlerContext) -> Bool {
        queued < queueLimit && context.channel.isWritable
    }

    /// Hands on whole messages while there is room; then notes whether part of one waits.
    private func deliver(context: ChannelHandlerContext) {
        guard var buffer = input else {
            deadlines?.partialMessage(false, at: now)
            return
        }
        input = nil
        while hasRoom(context: context), let message = Self.nextFrame(&buffer) {
            queued += 1
            deadlines?.queryReceived(at: now)
            context.fireChannelRead(wrapInboundOut(message))
            // The answer may have closed the connection.
            guard self.context != nil, context.channel.isActive else { return }
        }
        if buffer.readableBytes > 0 {
            if buffer.readerIndex > Self.largestFrame { buffer.discardReadBytes() }
            input = buffer
        }
        let partial = buffer.readableBytes > 0 && {
            var copy = buffer
            return Self.nextFrame(&copy) == nil
        }()
        deadlines?.partialMessage(partial, at: now)
        if partial { armTimer(context: context) }
    }

    /// An answer was written (or failed with the connection): room for one more.
    private func answerDone() {
        queued -= 1
        guard let context else { return }
        deadlines?.answerWritten(at: now)
        resume(context: context)
    }

    /// Hands on messages that waited for room, then passes on a held-back read.
    private func resume(context: ChannelHandlerContext) {
        guard hasRoom(context: context) else { return }
        if input != nil {
            deliver(context: context)
            guard self.context != nil else { return }
            context.fireChannelReadComplete()
        }
        if readHeld, hasRoom(context: context) {
            readHeld = false
            context.read()
        }
    }

    /// Schedules the check at the earliest deadline, unless one is due sooner.
    private func armTimer(context: ChannelHandlerContext) {
        guard let deadlines else { return }
        let at = deadlines.next.at
        if let timerAt, timerAt <= at, timer != nil { return }
        timer?.cancel()
        timerAt = at
        let deadline = origin + TimeAmount(at)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerAt = nil
            guard let context = self.context, let deadlines = self.deadlines else { return }
            if deadlines.expired(at: now) != nil {
                context.close(promise: nil)
            } else {
                armTimer(context: context)
            }
        }
    }
}

/// Splits an upstream's DNS-over-TCP answers (the forwarder's TCP retries) by their two-byte
/// length. The forwarder reads one answer and closes, so it needs no back-pressure.
struct UpstreamFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let message = TCPFrameDecoder.nextFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }
}
