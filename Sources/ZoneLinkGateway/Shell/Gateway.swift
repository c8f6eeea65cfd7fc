import Glibc
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// The ENI gateway: listeners on every ENI port of Connected endpoints, inside the consumer
/// VPCs' namespaces; health checks of every built-in load balancer's backends; and the zone
/// health that DNS reads. `apply` moves it to a new catalog while it runs: listeners and load
/// balancers that did not change keep their sockets and health, open flows survive unless
/// their endpoint is gone or no longer Connected.
public actor Gateway: Service {
    /// What identifies a listening socket: the same key across catalogs means the same socket.
    private struct SocketKey: Hashable {
        var proto: TransportProtocol
        var address: IPv4Endpoint
        var netns: String?
    }

    /// A TCP listener is the relay's; a UDP listener is a NIO channel.
    private enum Listening {
        case relay(ListeningSocket)
        case channel(Channel)
    }

    private struct Running {
        var listening: Listening
        var route: RouteBox
    }

    private struct Checked {
        var balancer: Balancer
        var probes: [RepeatedTask]
    }

    private var catalog: Catalog
    private var running: [SocketKey: Running] = [:]
    /// Handover ports (`GatewayPlan.ENIListener.handover`) the host of the balancer's other
    /// zone still listens on: this plan is served without them (that host carries their flows
    /// meanwhile, correctly) and each is bound here as soon as that host lets go, at its next
    /// heartbeat after hearing of this change. Tried every `handoverRetry`.
    private var pending: [SocketKey: RouteBox] = [:]
    private var pendingRetry: Task<Void, Never>?
    private var balancers: [String: Checked] = [:]
    /// Each capped endpoint's bandwidth cap, shared by its flows (`connectionBandwidth`).
    private var bandwidths: [String: ConnectionBandwidth] = [:]
    private var tracker: ZoneHealthTracker?
    /// What the sweep closes once a zonal shift's `drainAt` has passed.
    private let drain = Mutex(ZoneDrain(plan: nil))
    private var sweeper: RepeatedTask?
    private let namespaces: NamespaceRegistry
    private let group: MultiThreadedEventLoopGroup
    private let flows: FlowRegistry
    private let relay: TCPRelay
    /// Services with `dataPlane: kernel`: ZoneLink's namespace and nftables table.
    private let kernel: KernelDataPath
    private let conntrackWarnings: ThrottledWarnings
    private let logger: Logger
    private let onZoneHealth: @Sendable (_ unhealthy: Set<ENIID>) -> Void
    private let onReady: @Sendable () -> Void
    /// The plan `run` applies first, when `init` was given one; dropped once applied, so that
    /// a later reload does not keep the first catalog's plan alive.
    private var initialPlan: GatewayPlan?

    /// `relayThreads`: threads that carry TCP flows (`TCPRelay`); UDP flows, health checks and
    /// the idle sweep run on `group`. `plan`: the catalog's plan when the caller has made it
    /// already (it is not made twice: a quarter of a second at 100,000 endpoints). Throws only
    /// when the relay cannot make its epoll or eventfd.
    public init(
        catalog: Catalog, plan: GatewayPlan? = nil, namespaces: NamespaceRegistry, group: MultiThreadedEventLoopGroup,
        relayThreads: Int, flows: FlowRegistry, logger: Logger, onZoneHealth: @escaping @Sendable (Set<ENIID>) -> Void,
        onReady: @escaping @Sendable () -> Void = {}
    ) throws {
        self.initialPlan = plan
        self.relay = try TCPRelay(workers: relayThreads, logger: logger)
        self.kernel = KernelDataPath(logger: logger)
        self.conntrackWarnings = ThrottledWarnings(logger: logger)
        self.onReady = onReady
        self.catalog = catalog
        self.namespaces = namespaces
        self.group = group
        self.flows = flows
        self.logger = logger
        self.onZoneHealth = onZoneHealth
    }

    /// Whether the relay splices long-lived flows into the kernel: its maps are made (when the
    /// first flow was due, `RelaySplicing`). False while splicing is off, or when refused.
    public nonisolated var splicing: Bool { relay.splicing.loaded != nil }
    /// Relayed flows spliced into the kernel since the start.
    public nonisolated var splicedFlows: Int { relay.splicing.loaded?.splicedFlows ?? 0 }

    public func run() async throws {
        let plan = initialPlan
        initialPlan = nil
        try await apply(catalog, plan: plan)
        onReady()
        sweeper = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [flows] _ in
            flows.expireIdle()
            self.closeDrainedFlows()
        }
        try? await gracefulShutdown()
        sweeper?.cancel()
        pendingRetry?.cancel()
        pending = [:]
        for checked in balancers.values { checked.probes.forEach { $0.cancel() } }
        for running in running.values { await stop(running.listening) }
        flows.close { _ in true }
        await relay.stop()
        await kernel.stop()
    }

    /// Runs `catalog` from now on. New listeners are bound first (all or nothing: on failure
    /// the old catalog keeps running), then the ones no longer wanted close.
    /// - Parameter plan: `GatewayPlan(catalog: catalog)` when the caller derived it already.
    public func apply(_ catalog: Catalog, plan: GatewayPlan? = nil) async throws {
        let plan = plan ?? GatewayPlan(catalog: catalog)

        var next: [String: Checked] = [:]
        for upstream in plan.upstreams {
            let key = "\(upstream.loadBalancer)#\(upstream.listener)"
            if let checked = balancers[key], checked.balancer.upstream == upstream {
                next[key] = checked
            } else {
                next[key] = Checked(balancer: Balancer(upstream), probes: [])
            }
        }

        // One cap per capped endpoint; one that exists already keeps its object (its open
        // flows hold it) and takes the new rate once this catalog is committed.
        var caps: [String: (cap: ConnectionBandwidth, rate: Int)] = [:]
        for listener in plan.eniListeners where listener.proto == .tcp {
            guard let rate = listener.connectionBandwidth, caps[listener.endpoint] == nil else { continue }
            caps[listener.endpoint] = (bandwidths[listener.endpoint] ?? ConnectionBandwidth(megabitsPerSecond: rate), rate)
        }

        var routes: [SocketKey: ENIRoute] = [:]
        for listener in plan.eniListeners {
            guard let balancer = next["\(listener.loadBalancer)#\(listener.listener)"]?.balancer else { continue }
            routes[SocketKey(proto: listener.proto, address: listener.address, netns: listener.netns)] = ENIRoute(
                listener: listener, balancer: balancer,
                provider: try await namespaces.namespace(balancer.upstream.providerNetns), flows: flows, logger: logger,
                bandwidth: caps[listener.endpoint]?.cap,
                spliceAfterExchanges: catalog.gateway.spliceAfterExchanges > 0 ? catalog.gateway.spliceAfterExchanges : nil)
        }
        // Every namespace this catalog needs, opened before anything changes.
        var providers: [String: NetworkNamespace] = [:]
        for (key, checked) in next where checked.probes.isEmpty && checked.balancer.upstream.external == nil {
            providers[key] = try await namespaces.namespace(checked.balancer.upstream.providerNetns)
        }
        var opened: [SocketKey: Running] = [:]
        var held: [SocketKey: RouteBox] = [:]
        do {
            for (key, route) in routes where running[key] == nil {
                let box = RouteBox(route)
                do {
                    opened[key] = Running(listening: try await bind(box, in: namespaces.namespace(key.netns)), route: box)
                } catch let error as GatewayError where route.listener.handover && error.addressInUse {
                    held[key] = box
                }
            }
            // The kernel path's links, routes and table, for the health the balancers know
            // and the zones this catalog shifts away.
            let shiftedAway = Set(plan.zonalShifts.map(\.zone))
            var targets: [String: [KernelNAT.Target]] = [:]
            for upstream in plan.upstreams where upstream.kernel {
                let key = KernelNAT.upstreamKey(upstream.loadBalancer, upstream.listener)
                targets[key] = next[key]?.balancer.kernelTargets(shiftedAway: shiftedAway) ?? []
            }
            try await kernel.apply(
                plan, targets: targets, natPorts: catalog.gateway.natPorts,
                idleTimeouts: KernelFlows.IdleTimeouts(tcp: catalog.gateway.tcpIdleTimeout, udp: catalog.gateway.udpIdleTimeout))
        } catch {
            for running in opened.values {
                switch running.listening {
                case .relay(let socket): socket.close()  // no worker watches it yet
                case .channel(let channel): try? await channel.close()
                }
            }
            throw error
        }

        // Committed: from here on nothing fails.
        let shifted = Set(plan.zonalShifts.map(\.zone))
        for checked in next.values { checked.balancer.shift(away: shifted) }
        drain.withLock { $0 = ZoneDrain(plan: plan) }
        for (endpoint, cap) in bandwidths where caps[endpoint] == nil { cap.update(megabitsPerSecond: nil) }
        for (cap, rate) in caps.values { cap.update(megabitsPerSecond: rate) }
        bandwidths = caps.mapValues(\.cap)
        for (key, route) in routes {
            if let existing = running[key] { existing.route.update(route) }
        }
        for (key, running) in opened {
            if case .relay(let socket) = running.listening { relay.listen(socket) }
            self.running[key] = running
            logger.info("listening", metadata: [
                "flow.eni": "\(key.address)", "flow.proto": "\(key.proto.rawValue)", "flow.vpc": "\(running.route.current.listener.vpc)",
                "flow.endpoint": "\(running.route.current.listener.endpoint)",
            ])
        }
        for (key, box) in held where pending[key] == nil {
            let listener = box.current.listener
            logger.notice("\(listener.proto.rawValue) \(key.address) (\(listener.loadBalancer)) is still held by the host that carried it until now: its flows go there until it lets go at its next heartbeat; listening here as soon as it does")
        }
        pending = held
        if !pending.isEmpty && pendingRetry == nil {
            pendingRetry = Task { await self.bindPending() }
        }
        for key in Array(running.keys) where routes[key] == nil {
            if let gone = running.removeValue(forKey: key) {
                await stop(gone.listening)
                logger.info("stopped listening", metadata: ["flow.eni": "\(key.address)", "flow.proto": "\(key.proto.rawValue)"])
            }
        }
        // A flow lives while the port it came through is served: deleting an endpoint, removing
        // one of its zones or a listener port closes the flows that used it. A port on standby
        // (its balancer went home from its backup zone) takes no new flow but keeps its flows.
        let served = Set((plan.eniListeners + plan.standbyPorts).map { ServedPort(proto: $0.proto, vpc: $0.vpc, eni: $0.address, endpoint: $0.endpoint) })
        flows.close { !served.contains(ServedPort(proto: $0.key.proto, vpc: $0.key.vpc, eni: $0.key.eni, endpoint: $0.endpoint)) }

        for (key, checked) in balancers where next[key]?.balancer !== checked.balancer {
            checked.probes.forEach { $0.cancel() }
        }
        let tracker = ZoneHealthTracker(plan: plan, balancers: next.mapValues(\.balancer), replacing: self.tracker, publish: onZoneHealth)
        for (key, provider) in providers {
            guard let balancer = next[key]?.balancer else { continue }
            next[key]?.probes = startHealthChecks(balancer, provider: provider)
        }
        balancers = next
        self.tracker = tracker
        self.catalog = catalog
        tracker.publish()
    }

    /// How often a handover port the other host still holds is tried again.
    static let handoverRetry = Duration.milliseconds(500)
    /// How long a handover port may stay held before each warning: the other host should let
    /// go within a heartbeat or two; far longer means it carries this zone too (`host.zones`).
    static let handoverWarning = Duration.seconds(30)

    /// Binds the pending handover ports as the other host lets go of them, until none is left.
    private func bindPending() async {
        var warnAt = ContinuousClock.now + Self.handoverWarning
        while !pending.isEmpty && !Task.isCancelled {
            try? await Task.sleep(for: Self.handoverRetry)
            for (key, box) in pending {
                guard let listening = try? await bind(box, in: namespaces.namespace(key.netns)) else { continue }
                // An apply may have run meanwhile: keep the socket only if this port is still
                // the one waited for.
                guard pending[key] === box, running[key] == nil else {
                    await close(listening)
                    continue
                }
                pending[key] = nil
                if case .relay(let socket) = listening { relay.listen(socket) }
                running[key] = Running(listening: listening, route: box)
                logger.notice("\(box.current.listener.proto.rawValue) \(key.address): the other host let go, listening here now")
            }
            if !pending.isEmpty && ContinuousClock.now >= warnAt {
                let ports = pending.keys.map { "\($0.proto.rawValue) \($0.address)" }.sorted()
                logger.warning("still held by another process after \(Self.handoverWarning): \(ports.joined(separator: ", ")); does another host carry the same zone (host.zones)?")
                warnAt = ContinuousClock.now + Self.handoverWarning
            }
        }
        pendingRetry = nil
    }

    /// Closes a socket no worker watches yet.
    private func close(_ listening: Listening) async {
        switch listening {
        case .relay(let socket): socket.close()
        case .channel(let channel): try? await channel.close()
        }
    }

    private func bind(_ route: RouteBox, in namespace: NetworkNamespace) async throws -> Listening {
        let listener = route.current.listener
        do {
            switch listener.proto {
            case .tcp:
                return .relay(try await ListeningSocket.open(route, in: namespace))
            case .udp:
                let channel = try await namespace.run { [group] () -> EventLoopFuture<Channel> in
                    DatagramBootstrap(group: group)
                        .channelOption(.socketOption(.so_reuseaddr), value: 1)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(UDPFlowHandler(route: route))
                            }
                        }
                        .bind(to: listener.address.socketAddress)
                }.get()
                return .channel(channel)
            }
        } catch {
            throw GatewayError.bind(listener.address, listener.proto, netns: listener.netns, error)
        }
    }

    private func stop(_ listening: Listening) async {
        switch listening {
        case .relay(let socket): await relay.unlisten(socket)
        case .channel(let channel): try? await channel.close()
        }
    }

    /// Probes every backend of `balancer` on its interval; a transition is logged and
    /// recomputes zone health.
    private func startHealthChecks(_ balancer: Balancer, provider: NetworkNamespace) -> [RepeatedTask] {
        let upstream = balancer.upstream
        let check = upstream.healthCheck
        return upstream.backends.indices.map { index in
            let loop = group.next()
            let backend = IPv4Endpoint(address: upstream.backends[index].address, port: upstream.backendPort)
            return loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: TimeAmount(check.interval)) { [logger] _ in
                HealthProbe.run(check, backend: backend, proxyProtocol: upstream.proxyProtocol, provider: provider, on: loop).map { result in
                    guard let transition = balancer.record(result, backend: index) else { return }
                    logger.notice("backend \(transition == .becameHealthy ? "healthy" : "unhealthy")", metadata: [
                        "lb.id": "\(upstream.loadBalancer)", "lb.backend": "\(backend)",
                    ])
                    Task { await self.healthChanged() }
                }
            }
        }
    }

    /// The kernel data path's flows (conntrack entries of the ports its table serves), at most
    /// `gateway.limits.flows` of them, as the relay's table holds at most that many; empty
    /// (and logged, at most once per 10 s: every scrape of the metrics asks) when conntrack cannot be read.
    public func kernelFlows() async -> [KernelFlows.Row] {
        do {
            return try await kernel.flows(limit: catalog.gateway.limits.flows)
        } catch {
            conntrackWarnings.warn("conntrack", "kernel data path: conntrack cannot be read; kernel flows are not listed", metadata: ["error": "\(error)"])
            return []
        }
    }

    private func healthChanged() async {
        tracker?.publish()
        guard await kernel.isActive else { return }
        var targets: [String: [KernelNAT.Target]] = [:]
        for checked in balancers.values where checked.balancer.upstream.kernel {
            let upstream = checked.balancer.upstream
            targets[KernelNAT.upstreamKey(upstream.loadBalancer, upstream.listener)] = checked.balancer.kernelTargets()
        }
        await kernel.update(targets: targets)
    }

    /// Closes the flows of zones whose shift's `drainAt` has passed (the sweep, once a second).
    private nonisolated func closeDrainedFlows() {
        let drain = self.drain.withLock { $0 }
        let zones = drain.due(at: Int64(time(nil)))
        guard !zones.isEmpty else { return }
        var closed = 0
        flows.close { flow in
            let due = drain.isDue(flow, zones: zones)
            if due { closed += 1 }
            return due
        }
        if closed > 0 {
            logger.notice("zonal shift: drained flows", metadata: ["zones": "\(zones.sorted())", "flows": "\(closed)"])
        }
    }

    /// Each built-in load balancer listener's backends: healthy as probes say, and whether
    /// their zone is shifted away.
    public func backendHealth() -> [(loadBalancer: String, listener: Int, backend: Backend, healthy: Bool, shifted: Bool)] {
        balancers.values.flatMap { checked in
            checked.balancer.backendHealth.map {
                (checked.balancer.upstream.loadBalancer, checked.balancer.upstream.listener, $0.backend, $0.healthy, $0.shifted)
            }
        }
    }
}

/// Which flows a zonal shift's drain closes: those through an ENI of the zone, and those to a
/// backend (or external load balancer) of the zone, once the shift's `drainAt` has passed.
struct ZoneDrain: Sendable {
    private let deadlines: [String: Int64]
    private let eniZones: [ENIPort: String]
    private let targetZones: [Target: String]

    private struct ENIPort: Hashable {
        var vpc: String
        var address: IPv4Address
    }

    private struct Target: Hashable {
        var providerVPC: String
        var address: IPv4Address
    }

    init(plan: GatewayPlan?) {
        var deadlines: [String: Int64] = [:]
        for shift in plan?.zonalShifts ?? [] { if let at = shift.drainAt { deadlines[shift.zone] = at } }
        self.deadlines = deadlines
        var eniZones: [ENIPort: String] = [:]
        var targetZones: [Target: String] = [:]
        if !deadlines.isEmpty, let plan {
            for listener in plan.eniListeners { eniZones[ENIPort(vpc: listener.vpc, address: listener.address.address)] = listener.livesIn }
            for upstream in plan.upstreams {
                for (backend, zone) in zip(upstream.backends, upstream.backendZones) {
                    if let zone { targetZones[Target(providerVPC: upstream.providerVPC, address: backend.address)] = zone }
                }
                if let external = upstream.external, let zone = upstream.externalZone {
                    targetZones[Target(providerVPC: upstream.providerVPC, address: external.address)] = zone
                }
            }
        }
        self.eniZones = eniZones
        self.targetZones = targetZones
    }

    /// The zones whose drain is due at `now`.
    func due(at now: Int64) -> Set<String> {
        Set(deadlines.filter { now >= $0.value }.keys)
    }

    func isDue(_ flow: Flow, zones: Set<String>) -> Bool {
        if let zone = eniZones[ENIPort(vpc: flow.key.vpc, address: flow.key.eni.address)], zones.contains(zone) { return true }
        let target = Target(providerVPC: flow.binding.providerVPC, address: flow.binding.target.address)
        return targetZones[target].map(zones.contains) ?? false
    }
}

/// Works out which ENIs are unhealthy and publishes the set when it changes: an ENI is healthy
/// when it is served (its endpoint is Connected, its listeners bound) and a load balancer
/// listener behind it can take new flows.
///
/// Incremental: each ENI counts the listeners behind it that serve, and a backend's transition
/// touches only the ENIs of the load balancer listeners whose serving state flipped, not every
/// ENI of the catalog (at 100,000 endpoints, 300,000 ENIs per transition made a reload whose
/// backends changed state take seconds). Which ENIs each listener serves comes with the plan
/// (`GatewayPlan.HealthIndex`).
final class ZoneHealthTracker: Sendable {
    /// The plan's load balancer listeners (`HealthIndex.listeners`); nil for one the gateway
    /// does not run (it never serves).
    private let balancers: [Balancer?]
    private let index: GatewayPlan.HealthIndex
    /// For each of `balancers`, the positions in `allENIs` of the ENIs it serves.
    private var enisOf: [[Int]] { index.enis }
    private let allENIs: [ENIID]
    private struct State {
        /// Each balancer's serving state as last examined; nil before the first `publish`.
        var serving: [Bool]?
        /// For each of `allENIs`, how many of the balancers behind it serve.
        var servingBehind: [Int32] = []
        var unhealthy: Set<ENIID> = []
    }
    private let state: Mutex<State>
    /// What the tracker this one replaces published last, when its state could not be taken
    /// over: the first publish tells the sink only when it differs.
    private let previous: Set<ENIID>?
    private let sink: @Sendable (Set<ENIID>) -> Void

    /// - Parameter previous: the tracker of the plan applied until now. When both plans have
    ///   the same ENIs behind the same listeners (a reload that changed no endpoint, say), its
    ///   state is taken over and the first publish only looks for listeners that flipped; a
    ///   reload that changes no ENI's health publishes nothing either way.
    init(plan: GatewayPlan, balancers: [String: Balancer], replacing previous: ZoneHealthTracker?, publish: @escaping @Sendable (Set<ENIID>) -> Void) {
        self.balancers = plan.health.listeners.map { balancers["\($0.loadBalancer)#\($0.listener)"] }
        self.index = plan.health
        self.allENIs = plan.carriedENIs
        self.sink = publish
        if let previous, previous.index == plan.health, previous.allENIs == plan.carriedENIs {
            self.state = Mutex(previous.state.withLock { $0 })
            self.previous = nil
        } else {
            self.state = Mutex(State())
            self.previous = previous?.state.withLock { $0.serving == nil ? nil : $0.unhealthy }
        }
    }

    func publish() {
        let serving = balancers.map { $0?.isServing ?? false }
        let changed = state.withLock { state -> Set<ENIID>? in
            guard let last = state.serving else {
                var behind = [Int32](repeating: 0, count: allENIs.count)
                for (i, enis) in enisOf.enumerated() where serving[i] {
                    for eni in enis { behind[eni] += 1 }
                }
                var unhealthy = Set<ENIID>()
                for (eni, count) in behind.enumerated() where count == 0 { unhealthy.insert(allENIs[eni]) }
                state = State(serving: serving, servingBehind: behind, unhealthy: unhealthy)
                return unhealthy == previous ? nil : unhealthy
            }
            state.serving = serving
            var changed = false
            for i in serving.indices where serving[i] != last[i] {
                for eni in enisOf[i] {
                    state.servingBehind[eni] += serving[i] ? 1 : -1
                    switch (serving[i], state.servingBehind[eni]) {
                    case (true, 1): changed = state.unhealthy.remove(allENIs[eni]) != nil || changed
                    case (false, 0): changed = state.unhealthy.insert(allENIs[eni]).inserted || changed
                    default: break
                    }
                }
            }
            return changed ? state.unhealthy : nil
        }
        if let changed { sink(changed) }
    }
}

public enum GatewayError: Error, CustomStringConvertible {
    case bind(IPv4Endpoint, TransportProtocol, netns: String?, Error)

    /// Whether the port is in use (another process listens on it).
    var addressInUse: Bool {
        switch self {
        case .bind(_, _, _, let error):
            if let listen = error as? ListenError { return listen.errno == EADDRINUSE }
            if let io = error as? IOError { return io.errnoCode == EADDRINUSE }
            return false
        }
    }

    public var description: String {
        switch self {
        case .bind(let address, let proto, let netns, let error):
            "cannot listen on ENI \(address)/\(proto.rawValue) in \(netns.map { "netns \($0)" } ?? "the host namespace"): \(error)"
        }
    }
}

/// One ENI port as a flow knows it: what `Gateway.apply` compares to close flows whose port is
/// no longer served.
private struct ServedPort: Hashable {
    var proto: TransportProtocol
    var vpc: String
    var eni: IPv4Endpoint
    var endpoint: String
}
