import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// The ENI gateway of one catalog: listeners on every ENI port of Connected endpoints, inside
/// the consumer VPCs' namespaces; health checks of every built-in load balancer's backends; and
/// the zone health that DNS reads. Runs until graceful shutdown.
public struct Gateway: Service {
    /// An ENI as health is reported for it: its endpoint and zone.
    public struct ENIZone: Hashable, Sendable {
        public var endpoint: String
        public var zone: String
    }

    let plan: GatewayPlan
    /// Every ENI of the catalog, Connected or not: the ones not served are reported unhealthy.
    let allENIs: [ENIZone]
    let namespaces: NamespaceRegistry
    let group: MultiThreadedEventLoopGroup
    let flows: FlowRegistry
    let logger: Logger
    let onZoneHealth: @Sendable (_ unhealthy: Set<ENIZone>) -> Void

    public init(
        catalog: Catalog, namespaces: NamespaceRegistry, group: MultiThreadedEventLoopGroup, flows: FlowRegistry,
        logger: Logger, onZoneHealth: @escaping @Sendable (Set<ENIZone>) -> Void
    ) {
        self.plan = GatewayPlan(catalog: catalog)
        self.allENIs = catalog.endpoints.flatMap { endpoint in endpoint.enis.map { ENIZone(endpoint: endpoint.id, zone: $0.zone) } }
        self.namespaces = namespaces
        self.group = group
        self.flows = flows
        self.logger = logger
        self.onZoneHealth = onZoneHealth
    }

    public func run() async throws {
        let balancers = Dictionary(uniqueKeysWithValues: plan.upstreams.map { ("\($0.loadBalancer)#\($0.listener)", Balancer($0)) })
        var channels: [Channel] = []
        do {
            for listener in plan.eniListeners {
                guard let balancer = balancers["\(listener.loadBalancer)#\(listener.listener)"] else { continue }
                let route = ENIRoute(
                    listener: listener, balancer: balancer,
                    provider: try await namespaces.namespace(balancer.upstream.providerNetns), flows: flows, logger: logger)
                channels.append(try await bind(route, in: namespaces.namespace(listener.netns)))
                logger.info("listening", metadata: [
                    "flow.eni": "\(listener.address)", "flow.proto": "\(listener.proto.rawValue)", "flow.vpc": "\(listener.vpc)",
                    "flow.endpoint": "\(listener.endpoint)",
                ])
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }

        let health = ZoneHealthTracker(plan: plan, allENIs: allENIs, balancers: balancers, publish: onZoneHealth)
        health.publish()
        var tasks: [RepeatedTask] = []
        for balancer in balancers.values where balancer.upstream.external == nil {
            let provider = try await namespaces.namespace(balancer.upstream.providerNetns)
            tasks += startHealthChecks(balancer, provider: provider, tracker: health)
        }
        let loop = group.next()
        tasks.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [flows] _ in
            flows.expireIdle()
        })

        try? await gracefulShutdown()
        for task in tasks { task.cancel() }
        for channel in channels { try? await channel.close() }
    }

    private func bind(_ route: ENIRoute, in namespace: NetworkNamespace) async throws -> Channel {
        let listener = route.listener
        let address = try SocketAddress(ipAddress: listener.address.address.description, port: Int(listener.address.port))
        do {
            return try await namespace.run { [group] () -> EventLoopFuture<Channel> in
                switch listener.proto {
                case .tcp:
                    ServerBootstrap(group: group)
                        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                        .serverChannelOption(.backlog, value: 1024)
                        .childChannelOption(.autoRead, value: false)
                        .childChannelOption(.allowRemoteHalfClosure, value: true)
                        .childChannelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(TCPFlowHandler(route: route))
                            }
                        }
                        .bind(to: address)
                case .udp:
                    DatagramBootstrap(group: group)
                        .channelOption(.socketOption(.so_reuseaddr), value: 1)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(UDPFlowHandler(route: route))
                            }
                        }
                        .bind(to: address)
                }
            }.get()
        } catch {
            throw GatewayError.bind(listener.address, listener.proto, netns: listener.netns, error)
        }
    }

    private func startHealthChecks(_ balancer: Balancer, provider: NetworkNamespace, tracker: ZoneHealthTracker) -> [RepeatedTask] {
        let upstream = balancer.upstream
        let check = upstream.healthCheck
        return upstream.backends.indices.map { index in
            let loop = group.next()
            let backend = IPv4Endpoint(address: upstream.backends[index].address, port: upstream.backendPort)
            return loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: timeAmount(check.interval)) { [logger] _ in
                HealthProbe.run(check, backend: backend, provider: provider, on: loop).map { result in
                    guard let transition = balancer.record(result, backend: index) else { return }
                    logger.notice("backend \(transition == .becameHealthy ? "healthy" : "unhealthy")", metadata: [
                        "lb.id": "\(upstream.loadBalancer)", "lb.backend": "\(backend)",
                    ])
                    tracker.publish()
                }
            }
        }
    }
}

/// Works out which ENIs are unhealthy and publishes the set when it changes: an ENI is healthy
/// when it is served (its endpoint is Connected, its listeners bound) and a load balancer
/// listener behind it can take new flows.
final class ZoneHealthTracker: Sendable {
    private let served: [Gateway.ENIZone: [Balancer]]
    private let allENIs: [Gateway.ENIZone]
    private let published = Mutex<Set<Gateway.ENIZone>?>(nil)
    private let sink: @Sendable (Set<Gateway.ENIZone>) -> Void

    init(plan: GatewayPlan, allENIs: [Gateway.ENIZone], balancers: [String: Balancer], publish: @escaping @Sendable (Set<Gateway.ENIZone>) -> Void) {
        var served: [Gateway.ENIZone: [Balancer]] = [:]
        for listener in plan.eniListeners {
            if let balancer = balancers["\(listener.loadBalancer)#\(listener.listener)"] {
                served[Gateway.ENIZone(endpoint: listener.endpoint, zone: listener.zone), default: []].append(balancer)
            }
        }
        self.served = served
        self.allENIs = allENIs
        self.sink = publish
    }

    func publish() {
        let unhealthy = Set(allENIs.filter { eni in !(served[eni]?.contains { $0.isServing } ?? false) })
        let changed = published.withLock { last in
            defer { last = unhealthy }
            return last != unhealthy
        }
        if changed { sink(unhealthy) }
    }
}

public enum GatewayError: Error, CustomStringConvertible {
    case bind(IPv4Endpoint, TransportProtocol, netns: String?, Error)

    public var description: String {
        switch self {
        case .bind(let address, let proto, let netns, let error):
            "cannot listen on ENI \(address)/\(proto.rawValue) in \(netns.map { "netns \($0)" } ?? "the host namespace"): \(error)"
        }
    }
}

func timeAmount(_ duration: Duration) -> TimeAmount {
    let (seconds, attoseconds) = duration.components
    return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
}
