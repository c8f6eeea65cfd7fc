import Logging
import NIOCore
import Synchronization
import NIOPosix
import ZoneLinkCore
import ZoneLinkNetwork

/// Everything one ENI listener needs to turn an accepted connection into a flow.
struct ENIRoute: Sendable {
    let listener: GatewayPlan.ENIListener
    let balancer: Balancer
    let provider: NetworkNamespace
    let flows: FlowRegistry
    let logger: Logger
}

/// An ENI listener's current route: a reload that changes, say, the security groups replaces
/// it, and the next flow reads the new one while flows already open keep theirs.
final class RouteBox: Sendable {
    private let route: Mutex<ENIRoute>

    init(_ route: ENIRoute) { self.route = Mutex(route) }

    var current: ENIRoute { route.withLock { $0 } }

    func update(_ new: ENIRoute) { route.withLock { $0 = new } }
}

/// Starts a TCP flow on a connection accepted at an ENI: admit it (security groups), pick a
/// target, take a NAT port, connect from the NAT address inside the provider's namespace, then
/// hand both channels to a `GlueHandler` pair and step aside. Every refusal is a reset.
///
/// The accepted channel does not ask to read until the provider side is connected; what NIO
/// reads anyway (it reads when the peer half-closes early) is held here and replayed into the
/// relay once it is in place. Loop-bound, not Sendable.
final class TCPFlowHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let box: RouteBox
    private var route: ENIRoute
    private var early: [NIOAny] = []
    private var inputClosedEarly = false

    init(route: RouteBox) {
        self.box = route
        self.route = route.current
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        route = box.current
        guard let client = context.channel.remoteAddress?.ipv4Endpoint else { return reset(context, "no client address") }
        let listener = route.listener
        let decision = Admission.admit(
            protocol: .tcp, port: listener.address.port, source: client.address, connection: listener.connection,
            securityGroups: listener.securityGroups)
        guard decision == .admit else { return reset(context, "\(decision)") }
        guard let (target, backend) = route.balancer.pick() else {
            return reset(context, "no healthy backend behind \(listener.loadBalancer)")
        }
        let key = FlowKey(proto: .tcp, vpc: listener.vpc, client: client, eni: listener.address)
        open(key, target: target, backend: backend, context: context, attempt: 1)
    }

    /// NAT ports a flow tries before giving up when the port is taken by a socket outside
    /// ZoneLink (EADDRINUSE): each retry gets the pool's next port.
    static let portAttempts = 3

    private func open(_ key: FlowKey, target: IPv4Endpoint, backend: Int?, context: ChannelHandlerContext, attempt: Int) {
        let listener = route.listener
        let client = key.client
        let flow: Flow
        do {
            flow = try route.flows.open(key, target: target, upstream: route.balancer.upstream, endpoint: listener.endpoint, backend: backend)
        } catch {
            route.balancer.release(backend: backend)
            route.logger.warning("flow refused", metadata: ["flow.vpc": "\(listener.vpc)", "flow.client": "\(client)", "flow.error": "\(error)"])
            return reset(context, "\(error)")
        }

        let loop = context.eventLoop
        let consumer = context.channel
        let natAddress = flow.binding.nat
        let connected = route.provider.start(on: loop) {
            // Runs on the provider namespace's thread: the socket is created there.
            // Options set in the initializer, synchronously: bootstrap options cost a future each.
            ClientBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let options = try channel.syncOptions.unwrap()
                        try options.setOption(.allowRemoteHalfClosure, value: true)
                        try options.setOption(.socketOption(.so_reuseaddr), value: 1)
                    }
                }
                .connectTimeout(.seconds(5))
                .bind(to: natAddress.socketAddress)
                .connect(to: target.socketAddress)
        }

        let handler = NIOLoopBound(self, eventLoop: loop)
        let boundContext = NIOLoopBound(context, eventLoop: loop)
        let flows = route.flows
        let balancer = route.balancer
        connected.whenComplete { result in
            switch result {
            case .success(let provider):
                let (consumerSide, providerSide) = GlueHandler.matchedPair(
                    countingFirst: { flows.recordTraffic(key, fromClient: $0, fromTarget: 0) },
                    second: { flows.recordTraffic(key, fromClient: 0, fromTarget: $0) })
                do {
                    try provider.pipeline.syncOperations.addHandler(providerSide)
                    try consumer.pipeline.syncOperations.addHandler(consumerSide)
                    handler.value.replayEarlyInput(boundContext.value)
                    boundContext.value.pipeline.syncOperations.removeHandler(handler.value, promise: nil)
                } catch {
                    provider.close(promise: nil)
                    consumer.close(promise: nil)
                }
                flows.attach(key) {
                    consumer.close(promise: nil)
                    provider.close(promise: nil)
                }
                // The flow ends when both sockets have closed, whichever goes last.
                let end = NIOLoopBound(FlowEnd(), eventLoop: loop)
                let finish: @Sendable (Result<Void, Error>) -> Void = { _ in
                    end.value.remaining -= 1
                    if end.value.remaining == 0 {
                        flows.remove(key)
                        balancer.release(backend: backend)
                    }
                }
                consumer.closeFuture.whenComplete(finish)
                provider.closeFuture.whenComplete(finish)
                consumer.setOption(.autoRead, value: true).whenComplete { _ in }
            case .failure(let error):
                flows.remove(key)
                if let io = error as? IOError, io.errnoCode == EADDRINUSE, attempt < Self.portAttempts {
                    handler.value.open(key, target: target, backend: backend, context: boundContext.value, attempt: attempt + 1)
                    return
                }
                balancer.release(backend: backend)
                handler.value.reset(boundContext.value, "cannot reach \(target) from \(natAddress): \(error)")
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        early.append(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            inputClosedEarly = true
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Hands what arrived before the relay existed to the relay, in order.
    private func replayEarlyInput(_ context: ChannelHandlerContext) {
        for data in early { context.fireChannelRead(data) }
        if !early.isEmpty { context.fireChannelReadComplete() }
        early = []
        if inputClosedEarly { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    }

    /// Refuses a connection with a reset (SO_LINGER 0), as a closed port would.
    private func reset(_ context: ChannelHandlerContext, _ why: String) {
        route.logger.debug("connection reset", metadata: ["flow.eni": "\(route.listener.address)", "flow.reason": "\(why)"])
        let channel = context.channel
        guard let options = channel as? SocketOptionProvider else { return channel.close(promise: nil) }
        options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// Counts the sockets of a flow still open. Loop-bound.
final class FlowEnd {
    var remaining = 2
}

extension IPv4Endpoint {
    /// As NIO wants it, without formatting and parsing a string (the host name stays empty).
    var socketAddress: SocketAddress {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = self.address.value.bigEndian
        return SocketAddress(address, host: "")
    }
}

extension Optional {
    /// The value, or `ChannelError.operationUnsupported` (for `syncOptions`, absent off the loop).
    func unwrap() throws -> Wrapped {
        guard let value = self else { throw ChannelError.operationUnsupported }
        return value
    }
}

extension SocketAddress {
    var ipv4Endpoint: IPv4Endpoint? {
        guard case .v4(let address) = self else { return nil }
        return IPv4Endpoint(
            address: ZoneLinkCore.IPv4Address(UInt32(bigEndian: address.address.sin_addr.s_addr)),
            port: UInt16(bigEndian: address.address.sin_port))
    }
}
