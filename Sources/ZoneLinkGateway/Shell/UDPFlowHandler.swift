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

    private final class Session {
        let key: FlowKey
        let target: SocketAddress
        let backend: Int?
        var upstream: Channel?
        var queued: [ByteBuffer] = []

        init(key: FlowKey, target: SocketAddress, backend: Int?) {
            self.key = key
            self.target = target
            self.backend = backend
        }
    }

    private let box: RouteBox
    private var route: ENIRoute
    private var sessions: [IPv4Endpoint: Session] = [:]

    init(route: RouteBox) {
        self.box = route
        self.route = route.current
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let client = envelope.remoteAddress.ipv4Endpoint else { return }
        if let session = sessions[client] {
            forward(envelope.data, in: session)
            return
        }
        route = box.current
        let listener = route.listener
        guard Admission.admit(
            protocol: .udp, port: listener.address.port, source: client.address, connection: listener.connection,
            securityGroups: listener.securityGroups) == .admit,
            let (target, backend) = route.balancer.pick()
        else { return }
        let key = FlowKey(proto: .udp, vpc: listener.vpc, client: client, eni: listener.address)
        let flow: Flow
        let targetAddress: SocketAddress
        do {
            flow = try route.flows.open(key, target: target, upstream: route.balancer.upstream, endpoint: listener.endpoint, backend: backend)
            targetAddress = try SocketAddress(ipAddress: target.address.description, port: Int(target.port))
        } catch {
            route.balancer.release(backend: backend)
            route.flows.remove(key)
            route.logger.warning("flow refused", metadata: ["flow.vpc": "\(listener.vpc)", "flow.client": "\(client)", "flow.error": "\(error)"])
            return
        }
        let session = Session(key: key, target: targetAddress, backend: backend)
        session.queued.append(envelope.data)
        sessions[client] = session
        openUpstream(for: session, client: envelope.remoteAddress, nat: flow.binding.nat, context: context)
    }

    private func forward(_ payload: ByteBuffer, in session: Session) {
        guard let upstream = session.upstream else {
            if session.queued.count < Self.queueLimit { session.queued.append(payload) }
            return
        }
        route.flows.recordTraffic(session.key, fromClient: payload.readableBytes, fromTarget: 0)
        upstream.writeAndFlush(AddressedEnvelope(remoteAddress: session.target, data: payload), promise: nil)
    }

    private func openUpstream(for session: Session, client: SocketAddress, nat: IPv4Endpoint, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let eni = context.channel
        let key = session.key
        let target = session.target
        let flows = route.flows
        let made = route.provider.start(on: loop) {
            DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            UDPReplyHandler(eni: eni, client: client, target: target, counted: {
                                flows.recordTraffic(key, fromClient: 0, fromTarget: $0)
                            }))
                    }
                }
                .bind(to: try SocketAddress(ipAddress: nat.address.description, port: Int(nat.port)))
        }
        let handler = NIOLoopBound(self, eventLoop: loop)
        made.whenComplete { result in
            handler.value.upstreamOpened(result, for: key.client)
        }
    }

    private func upstreamOpened(_ result: Result<Channel, Error>, for client: IPv4Endpoint) {
        guard let session = sessions[client] else { return }
        switch result {
        case .success(let upstream):
            session.upstream = upstream
            let queued = session.queued
            session.queued = []
            for payload in queued { forward(payload, in: session) }
            route.flows.attach(session.key) { upstream.close(promise: nil) }
            let handler = NIOLoopBound(self, eventLoop: upstream.eventLoop)
            upstream.closeFuture.whenComplete { _ in handler.value.end(client) }
        case .failure(let error):
            route.logger.warning("cannot open UDP flow", metadata: ["flow.client": "\(client)", "flow.error": "\(error)"])
            end(client)
        }
    }

    private func end(_ client: IPv4Endpoint) {
        guard let session = sessions.removeValue(forKey: client) else { return }
        route.flows.remove(session.key)
        route.balancer.release(backend: session.backend)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for session in sessions.values { session.upstream?.close(promise: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // An ICMP error for one client says nothing about the others.
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
