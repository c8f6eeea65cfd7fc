import NIOCore
import NIOPosix

/// How one query to one upstream ended.
enum ExchangeOutcome: Sendable {
    case answer(ForwardedAnswer)
    /// TC over UDP: ask this upstream again over TCP.
    case truncated
    /// The upstream answered, uselessly (SERVFAIL, REFUSED, …).
    case unusable(String)
    /// No socket, no connection, or an ICMP error (a UDP port where nothing listens).
    case unreachable(String)
    case timeout
    /// The resolution ended first (its overall deadline).
    case cancelled
}

/// What an answer must match to be accepted, and where to count what is ignored.
struct Expectation: Sendable {
    let id: UInt16
    let key: ForwardKey
    let upstream: SocketAddress
    let maxTTL: UInt32
    let counters: ForwarderCounters

    /// The outcome `bytes` settle, or nil when they are to be ignored (counted).
    func outcome(of bytes: ByteBuffer, overTCP: Bool) -> ExchangeOutcome? {
        let reading = bytes.withUnsafeReadableBytes {
            UpstreamMessage.read($0, id: id, key: key, overTCP: overTCP, maxTTL: maxTTL, now: .now())
        }
        switch reading {
        case .ignored:
            counters.ignored.add(1, ordering: .relaxed)
            return nil
        case .truncated: return .truncated
        case .unusable(let reason): return .unusable(reason)
        case .answer(let answer): return .answer(answer)
        }
    }
}

/// One query to one upstream, over UDP or TCP, from a fresh socket: the kernel picks a new
/// ephemeral source port each time (randomised on Linux), and the ID comes from the system's
/// CSPRNG. The UDP socket is connected to the upstream, so the kernel passes on only datagrams
/// from the upstream's address and port (and reports ICMP port unreachable as ECONNREFUSED);
/// the handler checks the source again all the same.
enum UpstreamExchange {
    /// Largest upstream datagram read; we advertise 1232, a larger one would be cut and ignored.
    static let datagramCapacity = 4096

    /// Starts the exchange on `loop` and returns the promise it completes (at the latest at
    /// `deadline`, with `.timeout`). Completing the promise first (`.cancelled`) ends it early.
    /// Always returns on `loop`; the socket is closed once the promise is completed.
    static func start(
        to upstream: SocketAddress, key: ForwardKey, overTCP: Bool, deadline: NIODeadline, maxTTL: UInt32,
        counters: ForwarderCounters, on loop: any EventLoop
    ) -> EventLoopPromise<ExchangeOutcome> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: ExchangeOutcome.self)
        var random = SystemRandomNumberGenerator()
        let expectation = Expectation(
            id: UInt16.random(in: .min ... .max, using: &random), key: key, upstream: upstream, maxTTL: maxTTL, counters: counters)
        let query = UpstreamMessage.query(id: expectation.id, for: key)

        let timer = loop.assumeIsolated().scheduleTask(deadline: deadline) { promise.succeed(.timeout) }
        promise.futureResult.assumeIsolated().whenComplete { _ in timer.cancel() }

        let connected: EventLoopFuture<any Channel>
        if overTCP {
            let remaining = deadline - .now()
            connected = ClientBootstrap(group: loop)
                .connectTimeout(remaining > .milliseconds(1) ? remaining : .milliseconds(1))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(UpstreamFrameDecoder()),
                            UpstreamStreamHandler(expectation: expectation, promise: promise),
                        ])
                    }
                }
                .connect(to: upstream)
        } else {
            connected = DatagramBootstrap(group: loop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: datagramCapacity))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UpstreamDatagramHandler(expectation: expectation, promise: promise))
                    }
                }
                .connect(to: upstream)
        }
        connected.assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                promise.succeed(.unreachable("\(error)"))
            case .success(let channel):
                promise.futureResult.assumeIsolated().whenComplete { _ in channel.close(promise: nil) }
                var buffer = channel.allocator.buffer(capacity: query.count + 2)
                if overTCP { buffer.writeInteger(UInt16(query.count)) }
                buffer.writeBytes(query)
                channel.writeAndFlush(buffer, promise: nil)
                counters.sent.add(1, ordering: .relaxed)
                if overTCP { counters.sentOverTCP.add(1, ordering: .relaxed) }
            }
        }
        return promise
    }
}

/// Reads answers on a connected UDP socket until one matches.
final class UpstreamDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let expectation: Expectation
    private let promise: EventLoopPromise<ExchangeOutcome>

    init(expectation: Expectation, promise: EventLoopPromise<ExchangeOutcome>) {
        self.expectation = expectation
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == expectation.upstream else {
            expectation.counters.ignored.add(1, ordering: .relaxed)
            return
        }
        if let outcome = expectation.outcome(of: envelope.data, overTCP: false) { promise.succeed(outcome) }
    }

    /// ECONNREFUSED (ICMP port unreachable) and the like: nothing will answer here.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(.unreachable("\(error)"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(.unreachable("socket closed"))
    }
}

/// Reads length-prefixed answers on a TCP connection until one matches.
final class UpstreamStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let expectation: Expectation
    private let promise: EventLoopPromise<ExchangeOutcome>

    init(expectation: Expectation, promise: EventLoopPromise<ExchangeOutcome>) {
        self.expectation = expectation
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let outcome = expectation.outcome(of: unwrapInboundIn(data), overTCP: true) { promise.succeed(outcome) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(.unreachable("\(error)"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(.unreachable("connection closed"))
    }
}
