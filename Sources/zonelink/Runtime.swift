import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals
import ZoneLinkControlServer
import ZoneLinkCore
import ZoneLinkDNS
import ZoneLinkGateway
import ZoneLinkNetwork

/// What DNS answers with: the engine of the current catalog, the gateway's zone health and the
/// forwarder for other names, published together whenever one of them changes.
final class AnswerState: Sendable {
    private let state: Mutex<Responder>
    let publisher: ResponderPublisher

    init(engine: AnswerEngine, forwarder: Forwarder?) {
        let responder = Responder(engine: engine, forwarder: forwarder)
        self.state = Mutex(responder)
        self.publisher = ResponderPublisher(responder)
    }

    var forwarder: Forwarder? { state.withLock { $0.forwarder } }

    func update(engine: AnswerEngine, forwarder: Forwarder?) {
        state.withLock { state in
            state = Responder(engine: engine, health: state.health, forwarder: forwarder)
            publisher.publish(state)
        }
    }

    func update(health: ZoneHealth) {
        state.withLock { state in
            state = Responder(engine: state.engine, health: health, forwarder: state.forwarder)
            publisher.publish(state)
        }
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

/// The running configuration, and moving to a new one: on SIGHUP the config file is read and
/// validated again; a valid one is applied to addresses, DNS and the gateway while they serve,
/// an invalid one is refused with its errors logged and the old one kept.
actor Runtime {
    private let configPath: String
    private var catalog: Catalog
    private let addresses: InterfaceAddresses
    private let answers: AnswerState
    private let dns: DNSServer
    private let gateway: Gateway
    private let notifier: SystemdNotifier
    private let group: any EventLoopGroup
    private let logger: Logger
    private var control: ControlService?
    private var tokens: (store: TokenStore, file: String)?

    init(
        configPath: String, catalog: Catalog, addresses: InterfaceAddresses, answers: AnswerState, dns: DNSServer,
        gateway: Gateway, notifier: SystemdNotifier, group: any EventLoopGroup, logger: Logger
    ) {
        self.notifier = notifier
        self.group = group
        self.configPath = configPath
        self.catalog = catalog
        self.addresses = addresses
        self.answers = answers
        self.dns = dns
        self.gateway = gateway
        self.logger = logger
    }

    /// Adds the addresses a catalog's listeners bind to.
    static func ensureAddresses(of catalog: Catalog, with addresses: InterfaceAddresses) async throws {
        for wanted in GatewayPlan(catalog: catalog).namespaces {
            try await addresses.ensure(wanted.addresses, interface: wanted.interface, netns: wanted.netns)
        }
    }

    /// Re-reads the config file and applies it. Returns false (and logs why) when the new
    /// config is refused; the old one then keeps running untouched.
    @discardableResult
    func reload() async -> Bool {
        notifier.reloading()
        let applied = control == nil ? await apply() : await reloadThroughControlPlane()
        // A refusal shows in `systemctl status`: systemd itself only sees the reload finish.
        notifier.reloaded(status: (applied ? "" : "reload refused (see the journal); ") + Self.status(catalog))
        Counter(label: "zonelink_config_reloads_total", dimensions: [("result", applied ? "applied" : "refused")]).increment()
        return applied
    }

    /// The one-line STATUS= that `systemctl status` shows.
    static func status(_ catalog: Catalog) -> String {
        let connected = catalog.endpoints.filter { catalog.connection(of: $0) == .connected }.count
        return "serving \(catalog.endpoints.count) endpoints (\(connected) connected), \(catalog.vpcs.count) VPCs, config serial \(catalog.serial)"
    }

    /// From now on SIGHUP goes through the control plane, which merges the file with the API's
    /// objects and publishes the result to `apply(catalog:)`; the tokens file is re-read too.
    func attach(control: ControlService, tokens: TokenStore, tokensFile: String) {
        self.control = control
        self.tokens = (tokens, tokensFile)
    }

    private func reloadThroughControlPlane() async -> Bool {
        logger.notice("reloading", metadata: ["config": "\(configPath)"])
        if let tokens {
            do {
                tokens.store.replace(try TokenTable.load(file: tokens.file))
            } catch {
                logger.error("tokens not reloaded, the previous ones stay: \(error)")
            }
        }
        let serial = catalog.serial
        do {
            try await control?.reload(base: Configuration.load(file: configPath), file: configPath)
        } catch let error as ConfigError {
            for line in error.lines { logger.error("reload refused: \(line)") }
            return false
        } catch {
            logger.error("reload refused: \(error)")
            return false
        }
        return catalog.serial != serial  // apply(catalog:) took it
    }

    private func apply() async -> Bool {
        logger.notice("reloading", metadata: ["config": "\(configPath)"])
        let next: Catalog
        do {
            next = try Catalog.load(file: configPath, serial: catalog.serial &+ 1)
        } catch {
            for line in error.lines { logger.error("reload refused: \(line)") }
            return false
        }
        return await apply(catalog: next)
    }

    /// Applies a catalog (the control plane's, after an API change or a reload) to addresses,
    /// DNS and the gateway. False (logged) when they cannot take it: the old one keeps running.
    @discardableResult
    func apply(catalog next: Catalog) async -> Bool {
        let zones: [Zone]
        do {
            zones = try next.loadStaticZones(file: configPath)
        } catch {
            for line in error.lines { logger.error("catalog \(next.serial) refused: \(line)") }
            return false
        }
        do {
            try await Self.ensureAddresses(of: next, with: addresses)
            try await dns.apply(DNSServer.listeners(of: next))
            try await gateway.apply(next)
        } catch {
            logger.error("reload refused: \(error); the previous configuration keeps running")
            try? await dns.apply(DNSServer.listeners(of: catalog))
            return false
        }
        dns.apply(limits: next.dns.limits, tcpIdleTimeout: next.dns.tcpIdleTimeout)
        let forwarder = sameForwarding(catalog, next) ? answers.forwarder : makeForwarder(next, group: group, logger: logger)
        answers.update(engine: AnswerEngine(catalog: next, staticZones: zones), forwarder: forwarder)
        let keep = GatewayPlan(catalog: next).namespaces
        for namespace in Set(GatewayPlan(catalog: catalog).namespaces.map(\.netns) + keep.map(\.netns)) {
            await addresses.release(netns: namespace, keeping: Set(keep.filter { $0.netns == namespace }.flatMap(\.addresses)))
        }
        catalog = next
        logger.notice("reloaded", metadata: ["config": "\(configPath)", "serial": "\(next.serial)", "endpoints": "\(next.endpoints.count)"])
        return true
    }
}

/// Reloads on every SIGHUP until shutdown, then tells systemd the service is stopping.
struct ReloadOnHangup: Service {
    let runtime: Runtime
    let notifier: SystemdNotifier

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() { await runtime.reload() }
        notifier.stopping()
    }
}
