import Logging
import NIOCore
import ZoneLinkCore

/// Answers DNS queries arriving as UDP datagrams on one socket.
///
/// Responses are written as they are made and flushed once per read burst, so NIO can hand
/// the kernel a batch. A datagram that cannot be answered is dropped; errors never close the
/// socket. Loop-bound, hence not `Sendable`.
final class DatagramQueryHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let publisher: ResponderPublisher
    private var responder: Responder
    private var generation = -1
    private let listener: ListenerContext
    private let logger: Logger

    init(publisher: ResponderPublisher, listener: ListenerContext, logger: Logger) {
        self.publisher = publisher
        self.responder = publisher.responder
        self.listener = listener
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        publisher.refresh(&responder, seen: &generation)
        var output = context.channel.allocator.buffer(capacity: 512)
        let answered = envelope.data.withUnsafeReadableBytes {
            responder.respond(to: $0, listener: listener, source: envelope.remoteAddress.ipv4Address, transport: .udp, into: &output)
        }
        guard answered else { return }
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: output)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // One client's failure (an ICMP error, a refused send) is no reason to stop serving.
        logger.debug("udp error", metadata: ["dns.error": "\(error)"])
    }
}

extension SocketAddress {
    /// The IPv4 address, for zone lookup by source; nil for IPv6 and Unix sockets.
    var ipv4Address: ZoneLinkCore.IPv4Address? {
        guard case .v4(let address) = self else { return nil }
        return ZoneLinkCore.IPv4Address(UInt32(bigEndian: address.address.sin_addr.s_addr))
    }
}
