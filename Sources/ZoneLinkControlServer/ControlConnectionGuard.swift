import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// The control API's connections, on the Unix socket and `--control-tcp` together, counted
/// against `control.connections`.
///
/// Connecting needs no token, so this bound is what keeps silent or slow clients from holding
/// every descriptor. The API's connections come out of the descriptor reserve (never the
/// clients' budget), so `nat list` still answers when clients have spent theirs.
public final class ControlConnections: Sendable {
    public let limit: Int
    private let open = Atomic<Int>(0)
    private let refusedCount = Atomic<Int>(0)
    private let timedOutCount = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes a place for a new connection; false (counted) when all are taken.
    func enter() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        refusedCount.add(1, ordering: .relaxed)
        return false
    }

    func leave() { open.subtract(1, ordering: .relaxed) }

    func countTimeout() { timedOutCount.add(1, ordering: .relaxed) }

    /// Connections open now.
    public var inUse: Int { open.load(ordering: .relaxed) }
    /// Connections closed at once because `limit` were open.
    public var refused: Int { refusedCount.load(ordering: .relaxed) }
    /// Connections closed because their request head or body did not arrive in time.
    public var timedOut: Int { timedOutCount.load(ordering: .relaxed) }
}

/// First handler after Hummingbird's HTTP codec on every API connection: takes a place in
/// `ControlConnections` or closes the connection at once, and enforces two deadlines that
/// trickling bytes cannot move, unlike an idle timer:
///
/// - the request head must be complete within `headerTimeout` of the connection's start (a
///   kept-alive connection's later heads are bounded by Hummingbird's `idleTimeout`, which
///   also counts only whole HTTP parts, so trickled bytes do not reset it either);
/// - a request's body must be complete within `bodyTimeout` of its head.
///
/// While a request is being answered no deadline runs: that time is ZoneLink's own.
final class ControlConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let connections: ControlConnections
    private let bounds: ControlSettings
    private let warnings: ThrottledWarnings
    private var admitted = false
    private var started = false
    private var deadline: Scheduled<Void>?

    init(connections: ControlConnections, bounds: ControlSettings, warnings: ThrottledWarnings) {
        self.connections = connections
        self.bounds = bounds
        self.warnings = warnings
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        guard connections.enter() else {
            warnings.warn("control connection refused", "control API connection closed at once: control.connections (\(connections.limit)) are open")
            context.close(promise: nil)
            return
        }
        admitted = true
        arm(context, bounds.headerTimeout, "its request head did not arrive within control.headerTimeout")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            arm(context, bounds.bodyTimeout, "its request body did not arrive within control.bodyTimeout")
        case .body:
            break
        case .end:
            disarm()
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        if admitted {
            admitted = false
            connections.leave()
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
        if admitted {
            admitted = false
            connections.leave()
        }
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: Duration, _ why: String) {
        disarm()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            let (handler, context) = loopBound.value
            handler.deadline = nil
            handler.connections.countTimeout()
            handler.warnings.warn("control connection timed out", "control API connection closed: \(why)")
            context.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
