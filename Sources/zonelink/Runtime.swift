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

/// Everything one catalog asks of the data plane, derived from it once: the static zones
/// (files read once, `StaticZoneFiles`), the answer engine, the DNS listeners and the gateway
/// plan. Building one validates what only the data plane can check (the zone files); nothing
/// is bound or added yet.
struct ServingPlan: Sendable {
    let catalog: Catalog
    let engine: AnswerEngine
    let dnsListeners: [DNSServer.Listener]
    let gateway: GatewayPlan

    /// - Throws: `ConfigError` for a zone file that cannot be served, or a private domain that
    ///   overlaps one, with `file` and the key path.
    init(catalog: Catalog, file: String, zoneFiles: StaticZoneFiles) throws(ConfigError) {
        self.catalog = catalog
        self.engine = AnswerEngine(catalog: catalog, staticZones: try catalog.loadStaticZones(file: file, reusing: zoneFiles))
        self.dnsListeners = DNSServer.listeners(of: catalog)
        self.gateway = GatewayPlan(catalog: catalog)
    }

    /// The addresses wanted in each namespace.
    var addresses: [String?: Set<IPv4Address>] {
        Dictionary(gateway.namespaces.map { ($0.netns, Set($0.addresses)) }, uniquingKeysWith: { $0.union($1) })
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

    /// Adds the addresses a plan's listeners bind to.
    static func ensureAddresses(of plan: GatewayPlan, with addresses: InterfaceAddresses) async throws {
        for wanted in plan.namespaces {
            try await addresses.ensure(wanted.addresses, interface: wanted.interface, netns: wanted.netns)
        }
    }

    /// Serves `next` from now on, or throws why not (`ConfigError` for the catalog itself,
    /// `NotApplied` for the host) with the previous catalog still serving.
    func apply(_ next: Catalog) async throws {
        let nextPlan = try ServingPlan(catalog: next, file: configPath, zoneFiles: zoneFiles)
        let previous = plan
        do {
            try await Self.ensureAddresses(of: nextPlan.gateway, with: addresses)
        } catch {
            await releaseAddresses(keeping: previous, from: nextPlan)
            throw NotApplied(part: "addresses", reason: error)
        }
        do {
            try await dns.apply(nextPlan.dnsListeners)
        } catch {
            await releaseAddresses(keeping: previous, from: nextPlan)
            throw NotApplied(part: "DNS", reason: error)
        }
        do {
            try await gateway.apply(next, plan: nextPlan.gateway)
        } catch {
            try? await dns.apply(previous.dnsListeners)
            await releaseAddresses(keeping: previous, from: nextPlan)
            throw NotApplied(part: "the gateway", reason: error)
        }
        dns.apply(limits: next.dns.limits, tcpIdleTimeout: next.dns.tcpIdleTimeout)
        let forwarder = sameForwarding(previous.catalog, next) ? answers.forwarder : makeForwarder(next, group: group, logger: logger)
        answers.update(engine: nextPlan.engine, forwarder: forwarder)
        plan = nextPlan
        await releaseAddresses(keeping: nextPlan, from: previous)
        let waiting = next.startOnlySectionsChanged(since: previous.catalog)
        if !waiting.isEmpty {
            logger.warning("\(waiting.joined(separator: ", ")) changed: read at start only, the new values apply after a restart")
        }
        logger.notice("applied", metadata: ["serial": "\(next.serial)", "endpoints": "\(next.endpoints.count)"])
    }

    /// Removes the addresses ZoneLink added for `other` that `kept` does not want, in every
    /// namespace either plan uses.
    private func releaseAddresses(keeping kept: ServingPlan, from other: ServingPlan) async {
        let wanted = kept.addresses
        let namespaces = Set(wanted.keys).union(other.addresses.keys)
        for namespace in namespaces {
            await addresses.release(netns: namespace, keeping: wanted[namespace] ?? [])
        }
    }
}

/// SIGHUP: the config file and the tokens file read again. The file goes through the control
/// plane, which merges it with the API's objects and applies the result through `DataPlane`
/// (one way: file → control plane → catalog → data plane); a refusal keeps the old one.
actor Runtime {
    private let configPath: String
    private let control: ControlService
    private let tokens: TokenStore
    private let tokensFile: String
    private let notifier: SystemdNotifier
    private let logger: Logger

    init(configPath: String, control: ControlService, tokens: TokenStore, tokensFile: String, notifier: SystemdNotifier, logger: Logger) {
        self.configPath = configPath
        self.control = control
        self.tokens = tokens
        self.tokensFile = tokensFile
        self.notifier = notifier
        self.logger = logger
    }

    /// The one-line STATUS= that `systemctl status` shows.
    static func status(_ catalog: Catalog) -> String {
        let connected = catalog.endpoints.filter { catalog.connection(of: $0) == .connected }.count
        return "serving \(catalog.endpoints.count) endpoints (\(connected) connected), \(catalog.vpcs.count) VPCs, config serial \(catalog.serial)"
    }

    /// Re-reads the tokens and the config file and applies them. Returns false (and logs
    /// why) when the new config is refused; the old one then keeps running untouched.
    @discardableResult
    func reload() async -> Bool {
        notifier.reloading()
        logger.notice("reloading", metadata: ["config": "\(configPath)"])
        do {
            tokens.replace(try loadTokens(file: tokensFile, logger: logger))
        } catch {
            logger.error("tokens not reloaded, the previous ones stay: \(error)")
        }
        var applied = true
        do {
            try await control.reload(base: Configuration.load(file: configPath), file: configPath)
        } catch let error as ConfigError {
            for line in error.lines { logger.error("reload refused: \(line)") }
            applied = false
        } catch {
            logger.error("reload refused: \(error); the previous configuration keeps running")
            applied = false
        }
        let catalog = await control.catalog
        // A refusal shows in `systemctl status`: systemd itself only sees the reload finish.
        notifier.reloaded(status: (applied ? "" : "reload refused (see the journal); ") + Self.status(catalog))
        Counter(label: "zonelink_config_reloads_total", dimensions: [("result", applied ? "applied" : "refused")]).increment()
        if applied { logger.notice("reloaded", metadata: ["config": "\(configPath)", "serial": "\(catalog.serial)"]) }
        return applied
    }
}

/// Reads the tokens file, saying so when it is missing (every API request is then refused).
/// - Throws: `TokensFileError` for a file others may write; `ConfigError` for bad lines.
func loadTokens(file: String, logger: Logger) throws -> TokenTable {
    let table = try TokenTable.load(file: file)
    if table.principals.isEmpty && !FileManager.default.fileExists(atPath: file) {
        logger.warning("no tokens file at \(file): every control API request is refused (401) until it is written (a reload, SIGHUP, reads it)")
    }
    return table
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
