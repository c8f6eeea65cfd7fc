import CZoneLinkSystem
import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import ZoneLinkCore
import ZoneLinkNetwork

/// DNS over UDP and TCP on every configured listener, until graceful shutdown.
///
/// UDP: `workers` threads (`DatagramWorker`), each with its own socket per listener
/// (SO_REUSEPORT), so the kernel spreads datagrams over them. TCP: one listening socket per
/// listener on the NIO event loop group, connections spread over its loops. `apply` changes the
/// listeners while serving: the ones that stay keep their sockets.
public actor DNSServer: Service {
    public struct Listener: Sendable, Hashable {
        public var address: IPv4Endpoint
        public var context: ListenerContext
        /// The namespace whose address this is: its sockets are made there.
        public var netns: String?
        /// Whether response-rate limiting applies to its UDP answers.
        public var rateLimit: Bool

        public init(address: IPv4Endpoint, context: ListenerContext, netns: String? = nil, rateLimit: Bool = true) {
            self.address = address
            self.context = context
            self.netns = netns
            self.rateLimit = rateLimit
        }
    }

    private struct Bound {
        var udp: [DatagramSocket]  // one per worker
        var tcp: Channel
    }

    private var wanted: [Listener]
    private var bound: [Listener: Bound] = [:]
    private let table: SocketTable
    private let namespaces: NamespaceRegistry
    private let publisher: ResponderPublisher
    private let group: MultiThreadedEventLoopGroup
    private let workers: Int
    private let gate: StreamGate
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    /// Prepared answers of TCP connections, one table per event loop (made on first use).
    private let streamPrepared: [ObjectIdentifier: NIOLoopBoundBox<PreparedAnswers?>]

    /// `limits` and `tcpIdleTimeout` bound DNS-over-TCP clients (`dns.limits`); every accepted
    /// connection also takes a descriptor from `budget`.
    public init(
        listeners: [Listener], namespaces: NamespaceRegistry, publisher: ResponderPublisher,
        group: MultiThreadedEventLoopGroup, workers: Int, tcpIdleTimeout: Duration, limits: DNSLimits = DNSLimits(),
        budget: DescriptorBudget = .unlimited, logger: Logger, onReady: @escaping @Sendable () -> Void = {}
    ) {
        self.wanted = listeners
        self.table = SocketTable(workers: workers)
        self.namespaces = namespaces
        self.publisher = publisher
        self.group = group
        self.workers = workers
        self.gate = StreamGate(
            limits: limits, idleTimeout: tcpIdleTimeout, budget: budget, warnings: ThrottledWarnings(logger: logger))
        self.logger = logger
        self.onReady = onReady
        var tables: [ObjectIdentifier: NIOLoopBoundBox<PreparedAnswers?>] = [:]
        for loop in group.makeIterator() {
            tables[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeEmptyBox(valueType: PreparedAnswers.self, eventLoop: loop)
        }
        self.streamPrepared = tables
    }

    /// New TCP limits (a reload): for connections accepted from now on.
    public nonisolated func apply(limits: DNSLimits, tcpIdleTimeout: Duration) {
        gate.update(limits: limits, idleTimeout: tcpIdleTimeout)
    }

    /// The listeners `dns.listen` asks for, and each VPC's own on `dnsAddress`:53 in its
    /// namespace (of the VPCs this host carries, `host.vpcs`).
    public static func listeners(of catalog: Catalog) -> [Listener] {
        catalog.dns.listen.map {
            Listener(address: $0.address, context: ListenerContext(vpc: $0.vpc, zone: $0.zone), rateLimit: $0.rateLimit)
        }
            + catalog.vpcs.filter { catalog.carries(vpc: $0.id) }.compactMap { vpc in
                vpc.dnsAddress.map {
                    Listener(address: IPv4Endpoint(address: $0, port: 53), context: ListenerContext(vpc: vpc.id, zone: nil), netns: vpc.netns)
                }
            }
    }

    public func run() async throws {
        try await apply(wanted)
        let stop = StopSignal()
        let (finished, finishing) = AsyncStream<Void>.makeStream()
        for worker in 0..<workers {
            let thread = Thread { [table, publisher] in
                // Named for top(1) and /proc/PID/task/*/comm, where benchmarks look.
                zl_set_thread_name("dns-udp-\(worker)")
                DatagramWorker.run(worker: worker, table: table, publisher: publisher, stop: stop)
                finishing.yield()
            }
            thread.start()
        }
        onReady()
        try? await gracefulShutdown()

        stop.stop()
        var stopped = 0
        for await _ in finished {
            stopped += 1
            if stopped == workers { break }
        }
        // Late forwarded answers go out on these sockets: let them finish first.
        await publisher.responder.forwarder?.drain()
        // The workers are gone: nothing polls these sockets any more.
        for sockets in bound.values {
            for socket in sockets.udp { close(socket.fd) }
            try? await sockets.tcp.close()
        }
        bound = [:]
        logger.info("stopped")
    }

    /// Serves exactly `listeners` from now on: binds the new ones (all or nothing), then closes
    /// the ones no longer wanted. Listeners in both keep their sockets.
    public func apply(_ listeners: [Listener]) async throws {
        wanted = listeners
        let added = listeners.filter { bound[$0] == nil }
        var opened: [Listener: Bound] = [:]
        do {
            for listener in added where opened[listener] == nil {
                opened[listener] = try await bind(listener)
            }
        } catch {
            for (_, sockets) in opened {
                for socket in sockets.udp { close(socket.fd) }
                try? await sockets.tcp.close()
            }
            throw error
        }
        if !opened.isEmpty {
            _ = table.publish { perWorker in
                for (_, sockets) in opened {
                    for (worker, socket) in sockets.udp.enumerated() { perWorker[worker].append(socket) }
                }
            }
            for (listener, sockets) in opened {
                bound[listener] = sockets
                logger.info("listening", metadata: [
                    "dns.listen": "\(listener.address)", "dns.proto": "udp+tcp", "dns.vpc": "\(listener.context.vpc ?? "-")",
                    "dns.netns": "\(listener.netns ?? "-")",
                ])
            }
        }
        let keep = Set(listeners)
        for listener in Array(bound.keys) where !keep.contains(listener) { await unbind(listener) }
    }

    private func bind(_ listener: Listener) async throws -> Bound {
        let namespace = try await namespaces.namespace(listener.netns)
        var udp: [DatagramSocket] = []
        do {
            for _ in 0..<workers {
                let fd = try await namespace.run { [address = listener.address] in try DatagramWorker.openSocket(address) }
                udp.append(DatagramSocket(fd: fd, address: listener.address, context: listener.context, rateLimited: listener.rateLimit))
            }
            return Bound(udp: udp, tcp: try await bindStream(listener, in: namespace))
        } catch {
            for socket in udp { close(socket.fd) }
            throw error
        }
    }

    private func unbind(_ listener: Listener) async {
        guard let sockets = bound.removeValue(forKey: listener) else { return }
        let fds = Set(sockets.udp.map(\.fd))
        let generation = table.publish { perWorker in
            for worker in perWorker.indices { perWorker[worker].removeAll { fds.contains($0.fd) } }
        }
        await table.waitUntilSeen(generation)
        // A forwarded answer still on its way would use the descriptor (or its next owner).
        await publisher.responder.forwarder?.drain()
        for fd in fds { close(fd) }
        try? await sockets.tcp.close()
        logger.info("stopped listening", metadata: ["dns.listen": "\(listener.address)", "dns.netns": "\(listener.netns ?? "-")"])
    }

    /// Kernel send buffer of a DNS-over-TCP connection: one largest message.
    static let sendBuffer = 65_536

    private func bindStream(_ listener: Listener, in namespace: NetworkNamespace) async throws -> Channel {
        let address = try SocketAddress(ipAddress: listener.address.address.description, port: Int(listener.address.port))
        do {
            // bind creates the socket on the calling thread: the namespace's.
            return try await namespace.run { [group, publisher, gate, streamPrepared] in
                ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.backlog, value: 256)
                    // One read per wake-up: with reads held back, a connection buffers at most
                    // one message and one read (TCPFrameDecoder).
                    .childChannelOption(.maxMessagesPerRead, value: 1)
                    // A fixed send buffer (the kernel doubles it) instead of one autotuned to
                    // megabytes: a client that stops reading holds little kernel memory, and
                    // back-pressure reaches it after a few answers. The receive buffer stays
                    // autotuned, so that a server slowed by a busy host does not slow senders.
                    .childChannelOption(.socketOption(.so_sndbuf), value: Self.sendBuffer)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            guard gate.admit(channel) else { return }
                            let settings = gate.settings
                            try channel.pipeline.syncOperations.addHandlers([
                                TCPFrameDecoder(
                                    queueLimit: settings.queuedAnswers, idleTimeout: settings.idleTimeout,
                                    messageTimeout: settings.messageTimeout),
                                StreamQueryHandler(
                                    publisher: publisher, listener: listener.context,
                                    prepared: streamPrepared[ObjectIdentifier(channel.eventLoop)]
                                        ?? NIOLoopBoundBox.makeEmptyBox(valueType: PreparedAnswers.self, eventLoop: channel.eventLoop)),
                            ])
                        }
                    }
                    .bind(to: address)
            }.get()
        } catch {
            throw DNSServerError.bind(listener.address, error)
        }
    }
}

public enum DNSServerError: Error, CustomStringConvertible {
    case socket(IPv4Endpoint, errno: Int32)
    case bind(IPv4Endpoint, Error)

    public var description: String {
        switch self {
        case .socket(let address, let code):
            "cannot listen on \(address)/udp: \(String(cString: strerror(code))) (is another server using it, or is the address not local?)"
        case .bind(let address, let error):
            "cannot listen on \(address)/tcp: \(error) (is another server using it, or is the address not local?)"
        }
    }
}
