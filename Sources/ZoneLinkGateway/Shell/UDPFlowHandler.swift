import Logging
import NIOCore
import NIOPosix
import ZoneLinkCore

/// Carries UDP flows arriving at one ENI port: a session per client address, each with its own
/// upstream socket bound to a NAT port inside the provider's namespace, so that replies find
/// their way back to the right client even when two VPCs' clients share an address.
///
/// A session ends when the NAT table finds it idle for the UDP timeout (it closes the upstream
/// socket). Datagrams that arrive while its
/// upstream socket is being made wait (up to `queueLimit`); admission refusals are dropped
/// silently, as a firewall would. Loop-bound, not Sendable.
final class UDPFlowHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    static let queueLimit = 64
    /// Descriptors a session holds: its own socket towards the target.
    static let descriptorsPerSession = 1

    private final class Session {
        let key: FlowKey
        /// The route when the session began: its balancer and table, whatever reloads do later.
        let route: ENIRoute
        let client: SocketAddress
        /// The session's decision: what it holds, and the NAT port retries left.
        var opening: FlowOpening
        /// Where its datagrams go, once a target is picked.
        var target: SocketAddress?
        var upstream: Channel?
        var queued: [ByteBuffer] = []

        init(key: FlowKey, route: ENIRoute, client: SocketAddress, opening: FlowOpening) {
            self.key = key
            self.route = route
            self.client = client
            self.opening = opening
        }
    }

    private let box: RouteBox
    private var sessions: [IPv4Endpoint: Session] = [:]
    /// The ENI socket's channel, which the sessions' replies go out of.
    private var eni: Channel?

    init(route: RouteBox) {
        self.box = route
    }

    func handlerAdded(context: ChannelHandlerContext) {
        eni = context.channel
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let client = envelope.remoteAddress.ipv4Endpoint else { return }
        if let session = sessions[client] {
            forward(envelope.data, in: session)
            return
        }
        // A new client: `FlowOpening` decides; a refused one is dropped (what it held given back).
        let route = box.current
        let key = FlowKey(proto: .udp, vpc: route.listener.vpc, client: client, eni: route.listener.address)
        var opening = FlowOpening(descriptors: Self.descriptorsPerSession)
        guard case .connect(let nat, let target) = route.open(key, &opening, now: route.flows.now) else { return }
        let session = Session(key: key, route: route, client: envelope.remoteAddress, opening: opening)
        session.queued.append(envelope.data)
        sessions[client] = session
        openUpstream(for: session, from: nat, to: target, loop: context.eventLoop)
    }

    private func forward(_ payload: ByteBuffer, in session: Session) {
        guard let upstream = session.upstream, let target = session.target else {
            if session.queued.count < Self.queueLimit { session.queued.append(payload) }
            return
        }
        session.route.flows.recordTraffic(session.key, fromClient: payload.readableBytes, fromTarget: 0)
        upstream.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: payload), promise: nil)
    }

    /// Binds `session`'s upstream socket to its NAT endpoint `nat`, in the provider's namespace;
    /// the session waits (its datagrams queued) until it is bound.
    private func openUpstream(for session: Session, from nat: IPv4Endpoint, to target: IPv4Endpoint, loop: EventLoop) {
        guard let eni else { return end(session.key.client) }
        let key = session.key
        let client = session.client
        let targetAddress = target.socketAddress
        session.target = targetAddress
        let flows = session.route.flows
        let made = session.route.provider.start(on: loop) {
            DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            UDPReplyHandler(eni: eni, client: client, target: targetAddress, counted: {
                                flows.recordTraffic(key, fromClient: 0, fromTarget: $0)
                            }))
                    }
                }
                .bind(to: nat.socketAddress)
        }
        let handler = NIOLoopBound(self, eventLoop: loop)
        made.whenComplete { result in
            handler.value.upstreamOpened(result, for: key.client, loop: loop)
        }
    }

    private func upstreamOpened(_ result: Result<Channel, Error>, for client: IPv4Endpoint, loop: EventLoop) {
        guard let session = sessions[client] else {
            // The session ended while its socket was being made (its ENI stopped): close it.
            if case .success(let upstream) = result { upstream.close(promise: nil) }
            return
        }
        let route = session.route
        switch result {
        case .success(let upstream):
            _ = session.opening.connected()
            session.upstream = upstream
            let queued = session.queued
            session.queued = []
            for payload in queued { forward(payload, in: session) }
            route.flows.attach(session.key) { upstream.close(promise: nil) }
            let handler = NIOLoopBound(self, eventLoop: upstream.eventLoop)
            upstream.closeFuture.whenComplete { _ in handler.value.end(client) }
        case .failure(let error):
            // EADDRINUSE: a socket outside ZoneLink holds this NAT port; the decision may try the next.
            let failed = session.opening.connectFailed(portInUse: (error as? IOError)?.errnoCode == EADDRINUSE, reason: "\(error)")
            switch route.carry(failed, for: session.key, &session.opening, now: route.flows.now) {
            case .connect(let nat, let target):
                openUpstream(for: session, from: nat, to: target, loop: loop)
            case .refuse(let refusal, _):
                if case .unreachable = refusal {
                    route.logger.warning("cannot open UDP flow", metadata: ["flow.client": "\(client)", "flow.error": "\(error)"])
                }
                sessions[client] = nil
            default:
                end(client)
            }
        }
    }

    /// Ends `client`'s session: gives back what it held (its socket, if any, is closed by whoever
    /// called this or is closing already).
    private func end(_ client: IPv4Endpoint) {
        guard let session = sessions.removeValue(forKey: client) else { return }
        session.route.settle(session.opening.end(), for: session.key)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for (client, session) in sessions {
            // A session whose socket is still being made ends here; the others when theirs closes.
            if let upstream = session.upstream { upstream.close(promise: nil) } else { end(client) }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // An ICMP error for one client says nothing about the others.
        let route = box.current
        route.logger.debug("udp error", metadata: ["flow.eni": "\(route.listener.address)", "flow.error": "\(error)"])
    }
}

/// On a flow's upstream socket: sends the target's replies back to the client through the ENI
/// socket, and ignores datagrams from anyone else.
final class UDPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let eni: Channel
    private let client: SocketAddress
    private let target: SocketAddress
    private let counted: (Int) -> Void

    init(eni: Channel, client: SocketAddress, target: SocketAddress, counted: @escaping (Int) -> Void) {
        self.eni = eni
        self.client = client
        self.target = target
        self.counted = counted
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == target else { return }
        counted(envelope.data.readableBytes)
        eni.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: envelope.data), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {}
}
