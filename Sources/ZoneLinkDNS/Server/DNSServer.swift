import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import ZoneLinkCore

/// DNS over UDP and TCP on every configured listener, until graceful shutdown.
///
/// Each event loop gets its own UDP socket per listener (SO_REUSEPORT), so the kernel spreads
/// datagrams over the loops; TCP connections are spread by the accepting bootstrap.
public struct DNSServer: Service {
    public struct Listener: Sendable {
        public var address: IPv4Endpoint
        public var context: ListenerContext

        public init(address: IPv4Endpoint, context: ListenerContext) {
            self.address = address
            self.context = context
        }
    }

    let listeners: [Listener]
    let publisher: ResponderPublisher
    let group: MultiThreadedEventLoopGroup
    let tcpIdleTimeout: TimeAmount
    let logger: Logger
    let onReady: @Sendable () -> Void

    public init(
        listeners: [Listener], publisher: ResponderPublisher, group: MultiThreadedEventLoopGroup,
        tcpIdleTimeout: Duration, logger: Logger, onReady: @escaping @Sendable () -> Void = {}
    ) {
        self.listeners = listeners
        self.publisher = publisher
        self.group = group
        self.tcpIdleTimeout = .nanoseconds(Int64(tcpIdleTimeout.components.seconds) * 1_000_000_000 + tcpIdleTimeout.components.attoseconds / 1_000_000_000)
        self.logger = logger
        self.onReady = onReady
    }

    /// The listeners `dns.listen` asks for.
    public static func listeners(of catalog: Catalog) -> [Listener] {
        catalog.dns.listen.map { Listener(address: $0.address, context: ListenerContext(vpc: $0.vpc, zone: $0.zone)) }
    }

    public func run() async throws {
        var channels: [Channel] = []
        do {
            for listener in listeners {
                channels += try await bind(listener)
                logger.info("listening", metadata: ["dns.listen": "\(listener.address)", "dns.proto": "udp+tcp"])
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw DNSServerError.bindFailed(error)
        }
        onReady()
        try? await gracefulShutdown()
        for channel in channels { try? await channel.close() }
        logger.info("stopped")
    }

    private func bind(_ listener: Listener) async throws -> [Channel] {
        let address = try SocketAddress(ipAddress: listener.address.address.description, port: Int(listener.address.port))
        var channels: [Channel] = []
        for loop in group.makeIterator() {
            let udp = try await DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(ChannelOptions.Types.SocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_REUSEPORT)), value: 1)
                .channelOption(.datagramVectorReadMessageCount, value: 32)
                .channelOption(.maxMessagesPerRead, value: 1)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 32 * 2048))
                .channelInitializer { [publisher, logger] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            DatagramQueryHandler(publisher: publisher, listener: listener.context, logger: logger))
                    }
                }
                .bind(to: address).get()
            channels.append(udp)
        }
        let tcp = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { [publisher, tcpIdleTimeout] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(allTimeout: tcpIdleTimeout),
                        ByteToMessageHandler(TCPFrameDecoder()),
                        StreamQueryHandler(publisher: publisher, listener: listener.context),
                    ])
                }
            }
            .bind(to: address).get()
        channels.append(tcp)
        return channels
    }
}

public enum DNSServerError: Error, CustomStringConvertible {
    case bindFailed(Error)

    public var description: String {
        switch self {
        case .bindFailed(let error):
            "cannot listen: \(error) (is another server using the address, or is the address not local?)"
        }
    }
}
