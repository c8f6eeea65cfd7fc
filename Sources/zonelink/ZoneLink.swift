import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import OpenAPIRuntime
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkControlServer
import ZoneLinkCore
import ZoneLinkDNS
import ZoneLinkGateway
import ZoneLinkNetwork

/// Exit codes (`docs/cli.md`).
enum ExitStatus {
    static let invalidInput = ExitCode(1)
    static let runtimeFailure = ExitCode(2)
}

@main
struct ZoneLink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zonelink",
        abstract: "A PrivateLink data plane: zone-affine endpoint DNS, ENI gateway and control plane.",
        subcommands: [Serve.self, Check.self, ZoneCommand.self, NATCommand.self, ServiceCommand.self, EndpointCommand.self, HealthCommand.self,
                      DNSCommand.self, EventsCommand.self]
    )
}

/// Loads and validates a config and (unless told not to) its zone files and TSIG secret files, printing every issue
/// to stderr.
func loadCatalog(_ file: String, staticZones: Bool = true) throws -> (Catalog, [Zone]) {
    do {
        let catalog = try Catalog.load(file: file)
        let zones = staticZones ? try catalog.loadStaticZones(file: file) : []
        // Secret files are read as serving would read them, so `check` finds a missing one.
        if staticZones { _ = try catalog.loadTransferPolicy(file: file) }
        return (catalog, zones)
    } catch {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitStatus.invalidInput
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a config file; print every problem as FILE: key.path: problem (hint).")

    @Option(name: .long, help: "The config file.")
    var config: String

    func run() throws {
        let (catalog, zones) = try loadCatalog(config)
        let endpoints = catalog.endpoints.count
        print("\(config): valid (\(catalog.vpcs.count) VPCs, \(catalog.services.count) services, \(endpoints) endpoints, \(zones.count) static zones)")
    }
}

struct ZoneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zone", abstract: "Generated zones, and zonal shifts.", subcommands: [Export.self, Shift.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the generated zone of a view as an RFC 1035 master file (written by ldns).")

        @Option(name: .long, help: "The config file.")
        var config: String

        @Option(name: .long, help: "Answer as clients of this VPC see it (default: clients of no VPC).")
        var vpc: String?

        @Option(name: .long, help: "With --vpc: as clients in this availability zone see it (zone affinity), what a secondary of that view holds.")
        var zone: String?

        func validate() throws {
            if zone != nil && vpc == nil { throw ValidationError("--zone needs --vpc: a zone's clients are clients of one VPC") }
        }

        func run() throws {
            // Static zones are served from their own files; the export needs only the catalog.
            let (catalog, _) = try loadCatalog(config, staticZones: false)
            if let vpc, catalog.vpc(vpc) == nil {
                FileHandle.standardError.write(Data("zonelink: no VPC '\(vpc)' in \(config) (one of: \(catalog.vpcs.map(\.id).joined(separator: ", ")))\n".utf8))
                throw ExitStatus.invalidInput
            }
            if let zone, let vpc, let found = catalog.vpc(vpc), !found.vswitches.contains(where: { $0.zone == zone }) {
                let zones = Set(found.vswitches.map(\.zone)).sorted().joined(separator: ", ")
                FileHandle.standardError.write(Data("zonelink: VPC '\(vpc)' has no vSwitch in zone '\(zone)' (one of: \(zones))\n".utf8))
                throw ExitStatus.invalidInput
            }
            print(ZoneExport.masterFile(catalog: catalog, vpc: vpc, zone: zone), terminator: "")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run DNS, gateway and control API until SIGTERM.")
    /// The most unhealthy ENIs the `zone health` info line names; past it the line gives the count.
    static let namedUnhealthyENIs = 50

    @Option(name: .long, help: "The config file.")
    var config = "zones/local.yaml"

    @Option(name: .customLong("state-dir"), help: "Where state is kept (used by the control plane).")
    var stateDir = ".zonelink"

    @Option(name: .customLong("control-socket"), help: "The control socket (default: <state-dir>/control.sock).")
    var controlSocket: String?

    @Option(name: .long, help: "Where the state is committed: sqlite (<state-dir>/state.sqlite) or postgres://USER@HOST[:PORT]/DATABASE, shared by several hosts (default: the config's control.store, else sqlite).")
    var store: String?

    @Option(name: .customLong("control-tcp"), help: "Also serve the control API on this loopback TCP port.")
    var controlTCP: Int?

    @Option(name: .long, help: "The tokens file: lines `operator|ACCOUNT-ID SHA256-HEX` (default: <state-dir>/tokens).")
    var tokens: String?

    @Option(name: .long, help: "Threads of each kind: DNS UDP workers, TCP relay workers, event loops (default: one per core).")
    var threads = System.coreCount

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            if JournalLogHandler.isJournal {
                var handler = JournalLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "zonelink")
        // What ZoneLink creates (state directory, database, lock, socket) is its own alone.
        umask(0o077)
        // The file's objects and the API's (the state store), validated together.
        let tokensFile = tokens ?? "\(stateDir)/tokens"
        let stateLock: StateDirectoryLock
        let control: ControlService
        var shared: PostgresStateStore?
        var storeName = "the state in \(stateDir)"
        // Said in `systemctl status` while a host serves what it kept because the store was down at start.
        var storeDown = ""
        let tokenStore: TokenStore
        let zoneFiles = StaticZoneFiles()
        let plan: ServingPlan
        do {
            let base = try Configuration.load(file: config)
            tokenStore = TokenStore(try loadTokens(file: tokensFile, logger: logger))
            stateLock = try StateDirectoryLock(directory: stateDir)
            let location: StoreLocation
            do {
                location = try store.map { text throws(StoreLocationError) in try StoreLocation.parse(text) } ?? base.control.store
            } catch {
                FileHandle.standardError.write(Data("zonelink: --store \(error)\n".utf8))
                throw ExitStatus.invalidInput
            }
            switch location {
            case .sqlite:
                control = try await ControlService(base: base, file: config, store: StateStore.open(stateDirectory: stateDir))
            case .postgres(let where_):
                let postgres = PostgresStateStore(location: where_, logger: logger)
                storeName = postgres.name
                let lastApplied = LastAppliedFile(stateDirectory: stateDir)
                do {
                    try await postgres.open()
                    control = try await ControlService(base: base, file: config, store: postgres)
                    logger.notice("state store: \(postgres.name)")
                } catch let unavailable as StoreUnavailable {
                    switch lastApplied.load(store: postgres.name) {
                    case .failure(let why):
                        logger.error("\(unavailable); \(why): nothing to serve, not starting")
                        throw ExitStatus.runtimeFailure
                    case .success(let snapshot):
                        logger.warning("\(unavailable): starting from the last applied catalog (revision \(snapshot.revision)) kept in \(lastApplied.path); changes are refused until the store answers")
                        control = try await ControlService(base: base, file: config, store: postgres, startingFrom: snapshot)
                        storeDown = "store unavailable at start, serving the last applied catalog (revision \(snapshot.revision)); "
                    }
                }
                let name = postgres.name
                await control.setOnApplied { stored in
                    do { try lastApplied.save(stored, store: name) } catch {
                        logger.warning("\(error); a restart while the store is down would start from an older catalog")
                    }
                }
                shared = postgres
            }
            plan = try ServingPlan(catalog: await control.catalog, file: config, zoneFiles: zoneFiles)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitStatus.invalidInput
        } catch let error as TokensFileError {
            FileHandle.standardError.write(Data("zonelink: \(error)\n".utf8))
            throw ExitStatus.invalidInput
        } catch let error as ExitCode {
            throw error
        } catch {
            logger.error("cannot open \(storeName): \(error)")
            throw ExitStatus.runtimeFailure
        }
        let catalog = plan.catalog

        // Addresses first: the DNS and ENI listeners bind to them.
        let addresses = InterfaceAddresses()
        let namespaces = NamespaceRegistry()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        func cleanUp() async {
            await addresses.releaseAll()
            await namespaces.shutdown()
            try? await group.shutdownGracefully()
        }
        do {
            try await DataPlane.ensureAddresses(of: plan.gateway, with: addresses)
        } catch {
            logger.error("\(error)")
            await cleanUp()
            throw ExitStatus.runtimeFailure
        }

        // Every socket a client causes (DNS over TCP, flows) is counted against one budget.
        let budget: DescriptorBudget
        do {
            budget = try Self.descriptorBudget(catalog.descriptors, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("\(config): \(error)\n".utf8))
            await cleanUp()
            throw ExitStatus.invalidInput
        }

        let notifier = SystemdNotifier(waitingFor: ["dns", "gateway"])
        let status = storeDown + Runtime.status(catalog)
        // Transferred views' serials persist in the state directory; NOTIFY tells secondaries.
        let serialsFile = ViewSerialsFile(path: "\(stateDir)/view-serials.json")
        let knownSerials: [ViewSerials.Key: ViewSerials.Entry]
        switch serialsFile.load() {
        case .success(let entries): knownSerials = entries
        case .failure(let error):
            logger.warning("\(error); transferred views' serials start from the clock")
            knownSerials = [:]
        }
        let serials = ViewSerials(initial: knownSerials, clock: { UInt32(truncatingIfNeeded: time(nil)) }, onChange: { entries, generation in
            do { try serialsFile.save(entries, generation: generation) } catch {
                logger.warning("cannot write \(serialsFile.path): \(error); serials still never go back while running")
            }
        })
        let transferNotifier = TransferNotifier(group: group, serials: serials, logger: logger)
        do {
            try await transferNotifier.start()
        } catch {
            logger.error("cannot open the NOTIFY socket: \(error)")
            await cleanUp()
            throw ExitStatus.runtimeFailure
        }
        let answers = AnswerState(
            engine: plan.engine, relocated: catalog.relocatedENIs(plan.gateway.failover), forwarder: makeForwarder(catalog, group: group, logger: logger), transfers: plan.transfers,
            serials: serials, notifier: transferNotifier, logger: logger)
        let dns = DNSServer(
            listeners: plan.dnsListeners, namespaces: namespaces, publisher: answers.publisher, group: group,
            workers: threads, tcpIdleTimeout: catalog.dns.tcpIdleTimeout, limits: catalog.dns.limits, budget: budget, logger: logger,
            onReady: {
                logger.notice("ready", metadata: ["config": "\(config)", "endpoints": "\(catalog.endpoints.count)"])
                notifier.ready("dns", status: status)
                // The listeners are up: secondaries told now can transfer at once.
                answers.announce()
            })
        let unhealthyENIs = UnhealthyENIs()
        // Every flow's open and close, for `zonelink nat history` (read at start), unless the
        // operator turned the log off.
        let attribution = catalog.gateway.attribution.enabled
            ? AttributionLog(directory: stateDir, settings: catalog.gateway.attribution, logger: logger) : nil
        attribution?.start()
        if attribution == nil { logger.notice("attribution log off (gateway.attribution.enabled: false): no flow is recorded") }
        let flows = FlowRegistry(
            table: NATTable(
                portRange: catalog.gateway.natPorts, tcpIdleTimeout: catalog.gateway.tcpIdleTimeout,
                udpIdleTimeout: catalog.gateway.udpIdleTimeout, limits: catalog.gateway.limits),
            budget: budget, logger: logger, attribution: attribution,
            onRefused: { refused in
                Task {
                    let catalog = await control.catalog
                    control.events.publish(EventDraft.flowsRefused(
                        endpoint: refused.endpoint, proto: refused.proto.rawValue, port: refused.eni.port, summary: refused.summary,
                        count: refused.count, catalog: catalog))
                }
            })
        let gateway: Gateway
        do {
            gateway = try Gateway(
                catalog: catalog, plan: plan.gateway, namespaces: namespaces, group: group, relayThreads: threads, flows: flows, logger: logger,
                onZoneHealth: { unhealthy in
                    let before = unhealthyENIs.get()
                    unhealthyENIs.set(unhealthy)
                    Task {
                        let catalog = await control.catalog
                        control.events.publish(EventDraft.zoneHealthChanges(unhealthyBefore: before, unhealthyNow: unhealthy, catalog: catalog))
                    }
                    answers.update(unhealthy: unhealthy)
                    // The ENIs are named only while a line stays short: at 100,000 endpoints a
                    // listing of every one was a 10 MB line and half a second of CPU per change.
                    logger.info("zone health", metadata: unhealthy.count <= Self.namedUnhealthyENIs
                        ? ["dns.unhealthy": "\(unhealthy.sorted().map(\.description))"]
                        : ["dns.unhealthy.count": "\(unhealthy.count)"])
                },
                onReady: { notifier.ready("gateway", status: status) })
        } catch {
            logger.error("cannot start the gateway: \(error)")
            await cleanUp()
            throw ExitStatus.runtimeFailure
        }
        let dataPlane = DataPlane(
            plan: plan, configPath: config, zoneFiles: zoneFiles, addresses: addresses, answers: answers, dns: dns, gateway: gateway,
            group: group, logger: logger)
        // What reading and planning the first catalog left behind, returned as after a reload.
        await dataPlane.releaseFreedMemory()
        let runtime = Runtime(configPath: config, control: control, tokens: tokenStore, tokensFile: tokensFile, notifier: notifier, logger: logger)
        let watchdog = notifier.startWatchdog(on: group.next())
        // One way: API changes and SIGHUP reloads → control plane → catalog → data plane.
        await control.setPublish { catalog in
            try await dataPlane.apply(catalog)
            notifier.status(Runtime.status(catalog))
        }
        let metrics = ControlMetrics()
        metrics.bootstrapMetricsSystem()
        metrics.collectBeforeScrape(gatewayMetricsCollector(flows: flows, gateway: gateway, budget: budget))
        let api = try ControlAPI(
            service: control, tokens: tokenStore, metrics: metrics, bounds: catalog.control,
            // One table whichever data plane carries a flow: relayed flows, then kernel ones.
            nat: {
                flows.snapshot().map { Components.Schemas.NATRow($0.flow, age: $0.age) }
                    + (await gateway.kernelFlows()).map { Components.Schemas.NATRow($0) }
            },
            health: {
                let catalog = await control.catalog
                let unhealthy = unhealthyENIs.get()
                let backends = await gateway.backendHealth()
                let placements = GatewayHealth.placements(of: catalog, unhealthy: unhealthy, failover: await dataPlane.failover)
                return GatewayHealth(
                    backends: backends.map { row in
                        // The API names a listener by its port, as the config does (`listeners[].port`).
                        let listeners = catalog.loadBalancer(row.loadBalancer)?.listeners ?? []
                        let port = listeners.indices.contains(row.listener) ? String(listeners[row.listener].port) : "#\(row.listener)"
                        return Components.Schemas.BackendHealth(
                            loadBalancer: row.loadBalancer, listener: port, address: "\(row.backend.address)", healthy: row.healthy,
                            shiftedAway: row.shifted)
                    },
                    loadBalancers: placements.loadBalancers,
                    zones: placements.zones,
                    observed: ObservedHealth(healthyBackends: Set(backends.filter(\.healthy).map {
                        ObservedHealth.Backend(loadBalancer: $0.loadBalancer, listener: $0.listener, address: $0.backend.address)
                    })))
            },
            explainDNS: DNSExplain.explainer(answers.publisher),
            logger: logger)
        let controlServer = ControlServer(
            api: api, socketPath: controlSocket ?? "\(stateDir)/control.sock", tcpPort: controlTCP, eventLoopGroup: group, logger: logger)
        var running: [any Service] = [dns, gateway, controlServer, ReloadOnHangup(runtime: runtime, notifier: notifier)]
        // Other hosts' commits reach this host's DNS and gateway the way its own changes do.
        if let shared {
            running.append(StoreFollower(store: shared, control: control, logger: logger, onCaughtUp: { _ in
                notifier.status(Runtime.status(await control.catalog))
            }))
            // Zones placed on hosts: each tells the others what it carries and finds unhealthy.
            running.append(HostHeartbeat(
                store: shared, catalog: { await control.catalog }, unhealthyHere: { unhealthyENIs.get() },
                report: { await dataPlane.observe(peers: $0) }, logger: logger))
        }
        let services = ServiceGroup(
            services: running,
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [], logger: logger)
        do {
            try await services.run()
        } catch {
            watchdog?.cancel()
            attribution?.stop()
            logger.error("\(error)")
            await cleanUp()
            throw ExitStatus.runtimeFailure
        }
        watchdog?.cancel()
        attribution?.stop()
        await transferNotifier.stop()
        await cleanUp()
        withExtendedLifetime(stateLock) {}
    }
}

extension Serve {
    /// Raises the soft descriptor limit to the hard one and splits it: `reserve` for
    /// ZoneLink's own work (listeners, probes, store, the control API's connections), the rest
    /// for clients' sockets. Throws when the reserve leaves clients nothing.
    static func descriptorBudget(_ settings: DescriptorSettings, logger: Logger) throws -> DescriptorBudget {
        let limit = DescriptorBudget.raiseSoftLimit()
        let open = DescriptorBudget.openNow()
        let budget = DescriptorBudget(limit: limit, reserve: settings.reserve, alreadyOpen: open)
        guard budget.clientLimit > 0 else {
            throw DescriptorBudgetError(limit: limit, open: open, reserve: settings.reserve)
        }
        logger.info("file descriptors", metadata: [
            "fd.limit": "\(limit)", "fd.open": "\(open)", "fd.reserve": "\(settings.reserve)", "fd.clients": "\(budget.clientLimit)",
        ])
        return budget
    }
}

/// The descriptor limit is too low for the configured reserve.
struct DescriptorBudgetError: Error, CustomStringConvertible {
    var limit: Int
    var open: Int
    var reserve: Int

    var description: String {
        "descriptors.reserve: \(reserve) leaves no descriptor for clients: the process may open \(limit) and has \(open) open; "
            + "raise the hard RLIMIT_NOFILE (LimitNOFILE= in the unit, prlimit, ulimit -Hn) or lower descriptors.reserve"
    }
}

struct NATCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nat", abstract: "The gateway's NAT table.", subcommands: [List.self, NATHistoryCommand.self])

    struct List: ReadCommand {
        static let configuration = CommandConfiguration(abstract: "Show the live flows of the server running with this state directory.")
        @OptionGroup var output: ControlOutput

        func read(_ api: Client) async throws -> [Components.Schemas.NATRow] { try await api.listNAT().ok.body.json }

        func show(_ rows: [Components.Schemas.NATRow]) {
            printControlTable(
                ["PROTO", "VPC", "CLIENT", "ENI", "NAT", "TARGET", "ENDPOINT", "AGE", "BYTES IN", "BYTES OUT"],
                rows.map {
                    [$0._protocol.rawValue, $0.vpc, $0.client, $0.eni, $0.nat, $0.target, $0.endpoint, String(format: "%.0fs", $0.ageSeconds),
                     "\($0.bytesFromClient)", "\($0.bytesFromTarget)"]
                })
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The ENIs the gateway last reported unhealthy, for `GET /v1/health`.
final class UnhealthyENIs: Sendable {
    private let value = Mutex<Set<ENIID>>([])
    func set(_ unhealthy: Set<ENIID>) { value.withLock { $0 = unhealthy } }
    func get() -> Set<ENIID> { value.withLock { $0 } }
}

/// How a command reaches the control API: `--server` (default the control socket of
/// `--state-dir`), `--token` or `ZONELINK_TOKEN`.
struct APIOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "The state directory of the running `zonelink serve`.")
    var stateDir = ".zonelink"

    @Option(name: [.customLong("server"), .customLong("control-socket")], help: "The control API: a socket path or http://127.0.0.1:PORT (default: <state-dir>/control.sock; /run/zonelink/control.sock under systemd).")
    var server: String?

    @Option(name: .long, help: "The bearer token (default: $ZONELINK_TOKEN).")
    var token: String?

    /// Runs `call` with the generated client of the API; a refusal prints the API's message
    /// and issues on stderr and exits 1 (4xx) or 2 (5xx); an unreachable server exits 2.
    func call<Value>(_ call: (Client) async throws -> Value) async throws -> Value {
        let client: Client
        do {
            let address = try ControlServerAddress(server ?? "\(stateDir)/control.sock")
            client = Client.control(address: address, token: token ?? ProcessInfo.processInfo.environment["ZONELINK_TOKEN"])
        } catch {
            FileHandle.standardError.write(Data("zonelink: \(error)\n".utf8))
            throw ExitStatus.runtimeFailure
        }
        do {
            return try await call(client)
        } catch {
            guard let refusal = ControlRefusal(error) else {
                let reason = ((error as? ClientError)?.underlyingError).map { "\($0)" } ?? "\(error)"
                FileHandle.standardError.write(Data("zonelink: \(reason)\n".utf8))
                throw ExitStatus.runtimeFailure
            }
            var text = "zonelink: \(refusal)\n"
            for issue in refusal.error?.issues ?? [] { text += "  \(issue.keyPath): \(issue.problem) (\(issue.hint))\n" }
            FileHandle.standardError.write(Data(text.utf8))
            throw refusal.status >= 500 ? ExitStatus.runtimeFailure : ExitStatus.invalidInput
        }
    }
}
