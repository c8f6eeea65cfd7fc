import CZoneLinkSystem
import Dispatch
import Glibc
import Logging
import NIOCore
import Synchronization
import ZoneLinkControlServer
import ZoneLinkCore
import ZoneLinkDNS
import ZoneLinkGateway
import ZoneLinkNetwork

/// What DNS answers with: the engine of the current catalog, the zone health (what the gateway
/// reports, with the catalog's zonal shifts) and the forwarder for other names, published
/// together whenever one of them changes.
final class AnswerState: Sendable {
    private let state: Mutex<Responder>
    /// The ENIs reported unhealthy: by this host's gateway, and because of other hosts
    /// (`HostHeartbeat`); taken inside `state`'s lock, never the other way round.
    private let reported = Mutex<(here: Set<ENIID>, elsewhere: Set<ENIID>)>(([], []))
    let publisher: ResponderPublisher
    /// The transferred views' serials: one for the process, whatever catalog serves.
    let serials: ViewSerials
    /// Tells secondaries when their view changed; nil when nothing is notified (tests).
    private let notifier: TransferNotifier?
    /// The views last built for transfers, shared by every responder.
    private let cache = ViewCache()
    /// The views' serials in SOA records to ordinary clients, shared by every responder.
    private let clientSerials: ClientSerials
    /// Where transfers served are logged.
    private let logger: Logger?

    init(
        engine: AnswerEngine, relocated: [ENIID: String] = [:], forwarder: Forwarder?, transfers: TransferPolicy = .none,
        serials: ViewSerials = ViewSerials(clock: { UInt32(truncatingIfNeeded: time(nil)) }), notifier: TransferNotifier? = nil,
        logger: Logger? = nil
    ) {
        self.serials = serials
        self.logger = logger
        self.notifier = notifier
        let clientSerials = ClientSerials(serials: serials)
        self.clientSerials = clientSerials
        let responder = Responder(
            engine: engine, health: Self.health(unhealthy: [], engine: engine, relocated: relocated), forwarder: forwarder,
            transfers: Self.transfers(transfers, serials, cache, logger), clientSerials: clientSerials)
        self.state = Mutex(responder)
        self.publisher = ResponderPublisher(responder)
    }

    private static func transfers(_ policy: TransferPolicy, _ serials: ViewSerials, _ cache: ViewCache, _ logger: Logger?) -> Responder.Transfers? {
        policy.isEmpty ? nil : Responder.Transfers(policy: policy, serials: serials, cache: cache, logger: logger)
    }

    /// What DNS treats as unhealthy: the ENIs the gateway reports (and those other hosts make
    /// unhealthy), and the zones the engine's catalog shifts away; with the ENIs living in
    /// their balancer's backup zone now. The one place they meet.
    private static func health(unhealthy: Set<ENIID>, engine: AnswerEngine, relocated: [ENIID: String]) -> ZoneHealth {
        ZoneHealth(unhealthy: unhealthy, shiftedZones: engine.catalog.shiftedZones, relocated: relocated)
    }

    var forwarder: Forwarder? { state.withLock { $0.forwarder } }

    /// - Parameter relocated: the ENIs living in their balancer's backup zone now
    ///   (`Catalog.relocatedENIs`).
    func update(engine: AnswerEngine, forwarder: Forwarder?, transfers: TransferPolicy, relocated: [ENIID: String]) {
        let published = state.withLock { state in
            let unhealthy = reported.withLock { $0.here.union($0.elsewhere) }
            let health = Self.health(unhealthy: unhealthy, engine: engine, relocated: relocated)
            state = Responder(
                engine: engine, health: health, forwarder: forwarder, transfers: Self.transfers(transfers, serials, cache, logger),
                clientSerials: clientSerials)
            publisher.publish(state)
            return state
        }
        announce(published)
    }

    /// The ENIs the gateway reports unhealthy now.
    func update(unhealthy: Set<ENIID>) {
        publishHealth { $0.here = unhealthy }
    }

    /// The ENIs other hosts make unhealthy now (`HostHeartbeat`): their zones' hosts are down,
    /// or report them unhealthy.
    func update(elsewhere: Set<ENIID>) {
        publishHealth { $0.elsewhere = elsewhere }
    }

    private func publishHealth(_ change: (inout (here: Set<ENIID>, elsewhere: Set<ENIID>)) -> Void) {
        let published = state.withLock { state -> Responder? in
            let now = reported.withLock { reported in
                change(&reported)
                return reported.here.union(reported.elsewhere)
            }
            // Heartbeats repeat the same report every few seconds: publish changes only.
            guard now != state.health.unhealthy else { return nil }
            let health = Self.health(unhealthy: now, engine: state.engine, relocated: state.health.relocated)
            state = Responder(
                engine: state.engine, health: health, forwarder: state.forwarder, transfers: state.transfers, clientSerials: clientSerials)
            publisher.publish(state)
            return state
        }
        if let published { announce(published) }
    }

    /// NOTIFY to the secondaries of every view whose content changed (the first call: all).
    func announce(_ responder: Responder? = nil) {
        let responder = responder ?? state.withLock { $0 }
        guard let notifier, let transfers = responder.transfers else { return }
        notifier.contentMayHaveChanged(engine: responder.engine, health: responder.health, policy: transfers.policy, cache: transfers.cache)
    }
}

/// The forwarder a catalog asks for: none without upstreams.
func makeForwarder(_ catalog: Catalog, group: any EventLoopGroup, logger: Logger) -> Forwarder? {
    guard !catalog.dns.upstreams.isEmpty else { return nil }
    let timeout = catalog.dns.forwardTimeout
    let settings = ForwarderSettings(
        timeout: timeout, attemptTimeout: min(.milliseconds(800), timeout),
        maxTTL: UInt32(clamping: catalog.dns.cacheMaxTTL.components.seconds), cacheSize: catalog.dns.cacheSize,
        maxInFlight: catalog.dns.limits.forwardInFlight, maxInFlightPerClient: catalog.dns.limits.forwardInFlightPerClient)
    return Forwarder(upstreams: catalog.dns.upstreams, group: group, settings: settings, logger: logger)
}

/// True when two catalogs forward the same way, so the forwarder (and its cache) carries over.
func sameForwarding(_ a: Catalog, _ b: Catalog) -> Bool {
    a.dns.upstreams == b.dns.upstreams && a.dns.forwardTimeout == b.dns.forwardTimeout
        && a.dns.cacheMaxTTL == b.dns.cacheMaxTTL && a.dns.cacheSize == b.dns.cacheSize
        && a.dns.limits.forwardInFlight == b.dns.limits.forwardInFlight
        && a.dns.limits.forwardInFlightPerClient == b.dns.limits.forwardInFlightPerClient
}

/// Everything one catalog asks of the data plane, derived from it once: the static zones
/// (files read once, `StaticZoneFiles`), the answer engine, the DNS listeners and the gateway
/// plan. Building one validates what only the data plane can check (the zone files); nothing
/// is bound or added yet.
struct ServingPlan: Sendable {
    let catalog: Catalog
    let engine: AnswerEngine
    let dnsListeners: [DNSServer.Listener]
    let gateway: GatewayPlan
    /// Who may transfer which view, secrets read (`dns.secondaries`).
    let transfers: TransferPolicy
    /// The addresses wanted in each namespace (worked out once: a reload compares the old
    /// plan's with the new one's, 300,000 addresses each at 100,000 endpoints).
    let addresses: [String?: Set<IPv4Address>]

    /// - Throws: `ConfigError` for a zone file that cannot be served, or a private domain that
    ///   overlaps one, with `file` and the key path.
    /// - Parameter failover: the load balancers serving from their backup zone now; nil: as
    ///   the catalog's shifts alone decide.
    init(catalog: Catalog, file: String, zoneFiles: StaticZoneFiles, failover: BalancerFailover? = nil) throws(ConfigError) {
        self.catalog = catalog
        let staticZones = try catalog.loadStaticZones(file: file, reusing: zoneFiles)
        // The DNS engine's two parts and the gateway plan are the large derivations of a
        // catalog (at 100,000 endpoints, about 0.6 s, 0.25 s and 0.3 s of CPU) and need
        // nothing of each other: built on every core there is, a start or reload waits for
        // the longest one rather than for their sum.
        let parts = Self.inParallel(
            { AnswerEngine.SharedZone(catalog) },
            {
                let gateway = GatewayPlan(catalog: catalog, failover: failover)
                return (gateway, Dictionary(gateway.namespaces.map { ($0.netns, Set($0.addresses)) }, uniquingKeysWith: { $0.union($1) }))
            },
            { AnswerEngine.ServiceNames(catalog) })
        self.engine = AnswerEngine(catalog: catalog, staticZones: staticZones, shared: parts.0, services: parts.2)
        (self.gateway, self.addresses) = parts.1
        self.dnsListeners = DNSServer.listeners(of: catalog)
        self.transfers = try catalog.loadTransferPolicy(file: file)
    }

    /// `first()`, `second()` and `third()`, run at the same time on as many threads as there
    /// are cores (in index order: put the longest first); returns when all three have.
    private static func inParallel<A: Sendable, B: Sendable, C: Sendable>(
        _ first: @escaping @Sendable () -> A, _ second: @escaping @Sendable () -> B, _ third: @escaping @Sendable () -> C
    ) -> (A, B, C) {
        let results = Mutex<(A?, B?, C?)>((nil, nil, nil))
        DispatchQueue.concurrentPerform(iterations: 3) { part in
            switch part {
            case 0:
                let a = first()
                results.withLock { $0.0 = a }
            case 1:
                let b = second()
                results.withLock { $0.1 = b }
            default:
                let c = third()
                results.withLock { $0.2 = c }
            }
        }
        return results.withLock { ($0.0!, $0.1!, $0.2!) }
    }

}

/// Why the data plane did not take a catalog; what it served before keeps serving.
struct NotApplied: Error, CustomStringConvertible {
    /// What refused: "addresses", "DNS" or "the gateway".
    var part: String
    var reason: any Error

    var description: String { "\(part) refused it: \(reason)" }
}

/// DNS and the gateway as one catalog drives them: the one place a catalog (from the control
/// plane, after an API change or a reload) reaches addresses, listeners and answers.
///
/// `apply` is all or nothing: addresses are added, DNS and then the gateway bind what they
/// need; if any step fails, what was done is undone and the previous plan keeps serving.
actor DataPlane {
    private var plan: ServingPlan
    private let configPath: String
    private let zoneFiles: StaticZoneFiles
    private let addresses: InterfaceAddresses
    private let answers: AnswerState
    private let dns: DNSServer
    private let gateway: Gateway
    private let group: any EventLoopGroup
    private let logger: Logger
    /// One plan applied at a time: a catalog (API, reload, another host's commit) and a
    /// heartbeat that moves a load balancer both re-plan, and the actor alone would let them
    /// interleave at every suspension.
    private let turns = Turns()
    /// The other hosts' last heartbeats (`HostHeartbeat`); nil until the first one, or when
    /// this host places no zones: then only shifts make a zone unavailable.
    private var peers: [PeerBeat]?
    /// The pending return of freed memory to the system (`releaseFreedMemory`).
    private var trimming: Task<Void, Never>?
    /// How long after a plan is replaced its memory is returned: time for the DNS workers to
    /// move to the new responder (within `DatagramWorker.pollTimeout`, idle or not) and for the
    /// control plane to drop the old catalog.
    static let trimDelay = Duration.seconds(3)

    init(
        plan: ServingPlan, configPath: String, zoneFiles: StaticZoneFiles, addresses: InterfaceAddresses, answers: AnswerState,
        dns: DNSServer, gateway: Gateway, group: any EventLoopGroup, logger: Logger
    ) {
        self.plan = plan
        self.configPath = configPath
        self.zoneFiles = zoneFiles
        self.addresses = addresses
        self.answers = answers
        self.dns = dns
        self.gateway = gateway
        self.group = group
        self.logger = logger
    }

    /// The load balancers serving from their backup zone in the plan applied now (`health`).
    var failover: BalancerFailover { plan.gateway.failover }

    /// Adds the addresses a plan's listeners bind to.
    static func ensureAddresses(of plan: GatewayPlan, with addresses: InterfaceAddresses) async throws {
        for wanted in plan.namespaces {
            try await addresses.ensure(wanted.addresses, shared: wanted.shared, interface: wanted.interface, netns: wanted.netns)
        }
    }

    /// Serves `next` from now on, or throws why not (`ConfigError` for the catalog itself,
    /// `NotApplied` for the host) with the previous catalog still serving.
    func apply(_ next: Catalog) async throws {
        await turns.acquire()
        defer { turns.release() }
        try await apply(next, failover: failover(of: next))
    }

    /// Which load balancers serve from their backup zone under `catalog`, by its shifts and
    /// the other hosts' last heartbeats.
    private func failover(of catalog: Catalog) -> BalancerFailover {
        let live = peers.map { catalog.liveZonesElsewhere(peers: $0, lease: HostHeartbeat.lease) }
        return catalog.balancerFailover(unavailable: catalog.unavailableZones(liveElsewhere: live))
    }

    /// The other hosts' heartbeats, read again (`HostHeartbeat`, every 2 s): DNS learns which
    /// ENIs they make unhealthy, and when a load balancer's zone has gone or come back, the
    /// plan is applied again with the balancer moved (the same catalog: no reload, no restart).
    /// - Parameter peers: nil when this host places no zones.
    func observe(peers: [PeerBeat]?) async {
        await turns.acquire()
        defer { turns.release() }
        self.peers = peers
        let catalog = plan.catalog
        let failover = failover(of: catalog)
        let previous = plan.gateway.failover
        if failover != previous {
            for (balancer, zone) in failover.moved.sorted(by: { $0.key < $1.key }) where previous.moved[balancer] == nil {
                logger.notice("load balancer \(balancer) serves from its backup zone \(zone): its zone \(catalog.loadBalancer(balancer)?.zone ?? "?") is unavailable")
            }
            for balancer in previous.moved.keys.sorted() where failover.moved[balancer] == nil {
                logger.notice("load balancer \(balancer) serves from its zone \(catalog.loadBalancer(balancer)?.zone ?? "?") again: new flows go there, open ones continue")
            }
            do {
                try await apply(catalog, failover: failover)
            } catch {
                logger.error("cannot move load balancers between their zones: \(error); retried at the next heartbeat")
            }
        }
        answers.update(elsewhere: unhealthyElsewhere(catalog, failover: plan.gateway.failover))
    }

    /// The ENIs DNS treats as unhealthy because of the other hosts; none before the first
    /// heartbeat was read.
    private func unhealthyElsewhere(_ catalog: Catalog, failover: BalancerFailover) -> Set<ENIID> {
        peers.map { catalog.unhealthyElsewhere(peers: $0, lease: HostHeartbeat.lease, failover: failover) } ?? []
    }

    private func apply(_ next: Catalog, failover: BalancerFailover) async throws {
        let nextPlan = try ServingPlan(catalog: next, file: configPath, zoneFiles: zoneFiles, failover: failover)
        let previous = plan
        do {
            try await Self.ensureAddresses(of: nextPlan.gateway, with: addresses)
        } catch {
            await releaseAddresses(keeping: previous, from: nextPlan, undoing: true)
            throw NotApplied(part: "addresses", reason: error)
        }
        do {
            try await dns.apply(nextPlan.dnsListeners)
        } catch {
            await releaseAddresses(keeping: previous, from: nextPlan, undoing: true)
            throw NotApplied(part: "DNS", reason: error)
        }
        do {
            try await gateway.apply(next, plan: nextPlan.gateway)
        } catch {
            try? await dns.apply(previous.dnsListeners)
            await releaseAddresses(keeping: previous, from: nextPlan, undoing: true)
            throw NotApplied(part: "the gateway", reason: error)
        }
        dns.apply(limits: next.dns.limits, tcpIdleTimeout: next.dns.tcpIdleTimeout)
        let forwarder = sameForwarding(previous.catalog, next) ? answers.forwarder : makeForwarder(next, group: group, logger: logger)
        answers.update(engine: nextPlan.engine, forwarder: forwarder, transfers: nextPlan.transfers, relocated: next.relocatedENIs(failover))
        if peers != nil { answers.update(elsewhere: unhealthyElsewhere(next, failover: failover)) }
        plan = nextPlan
        await releaseAddresses(keeping: nextPlan, from: previous)
        let waiting = next.startOnlySectionsChanged(since: previous.catalog)
        if !waiting.isEmpty {
            logger.warning("\(waiting.joined(separator: ", ")) changed: read at start only, the new values apply after a restart")
        }
        logger.notice("applied", metadata: ["serial": "\(next.serial)", "endpoints": "\(next.endpoints.count)"])
        releaseFreedMemory()
    }

    /// Gives the heap's free pages back to the system a little after a plan was replaced. The
    /// old plan (at 100,000 endpoints a catalog, an engine and a gateway plan: a few hundred
    /// MB) is freed once nothing answers from it, but glibc keeps most freed memory inside its
    /// heaps, spread so that little is returned: a daemon reloaded now and then held two or
    /// three catalogs' worth for good (measured in docs/scale.md). `malloc_trim` returns the
    /// free pages; it takes milliseconds, on no answering thread.
    func releaseFreedMemory() {
        trimming?.cancel()
        trimming = Task.detached {
            do { try await Task.sleep(for: DataPlane.trimDelay) } catch { return }
            _ = malloc_trim(0)
        }
    }

    /// Removes the addresses ZoneLink added for `other` that `kept` does not want, in every
    /// namespace either plan uses.
    /// - Parameter undoing: a failed apply is being undone: the shared addresses it found
    ///   present stay (the other host may be listening on them).
    private func releaseAddresses(keeping kept: ServingPlan, from other: ServingPlan, undoing: Bool = false) async {
        let wanted = kept.addresses
        let namespaces = Set(wanted.keys).union(other.addresses.keys)
        for namespace in namespaces {
            await addresses.release(netns: namespace, keeping: wanted[namespace] ?? [], sparingShared: undoing)
        }
    }
}
