import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import ZoneLinkCore
import ZoneLinkDNS

/// Exit codes of DESIGN section 3.
enum ExitStatus {
    static let invalidInput = ExitCode(1)
    static let runtimeFailure = ExitCode(2)
}

@main
struct ZoneLink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zonelink",
        abstract: "A PrivateLink data plane: zone-affine endpoint DNS, ENI gateway and control plane.",
        subcommands: [Serve.self, Check.self, ZoneCommand.self]
    )
}

/// Loads and validates a config and (unless told not to) its zone files, printing every issue
/// to stderr.
func loadCatalog(_ file: String, staticZones: Bool = true) throws -> (Catalog, [Zone]) {
    do {
        let catalog = try Catalog.load(file: file)
        return (catalog, staticZones ? try catalog.loadStaticZones(file: file) : [])
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
        commandName: "zone", abstract: "Generated zones.", subcommands: [Export.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the generated zone of a view as an RFC 1035 master file (written by ldns).")

        @Option(name: .long, help: "The config file.")
        var config: String

        @Option(name: .long, help: "Answer as clients of this VPC see it (default: clients of no VPC).")
        var vpc: String?

        func run() throws {
            // Static zones are served from their own files; the export needs only the catalog.
            let (catalog, _) = try loadCatalog(config, staticZones: false)
            if let vpc, catalog.vpc(vpc) == nil {
                FileHandle.standardError.write(Data("zonelink: no VPC '\(vpc)' in \(config) (one of: \(catalog.vpcs.map(\.id).joined(separator: ", ")))\n".utf8))
                throw ExitStatus.invalidInput
            }
            print(ZoneExport.masterFile(catalog: catalog, vpc: vpc), terminator: "")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run DNS, gateway and control API until SIGTERM.")

    @Option(name: .long, help: "The config file.")
    var config = "zones/local.yaml"

    @Option(name: .customLong("state-dir"), help: "Where state is kept (used by the control plane).")
    var stateDir = ".zonelink"

    @Option(name: .long, help: "DNS threads: UDP workers, and TCP event loops (default: one per core).")
    var threads = System.coreCount

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "zonelink")
        let (catalog, zones) = try loadCatalog(config)
        let publisher = ResponderPublisher(Responder(engine: AnswerEngine(catalog: catalog, staticZones: zones)))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let dns = DNSServer(
            listeners: DNSServer.listeners(of: catalog), publisher: publisher, group: group, workers: threads,
            tcpIdleTimeout: catalog.dns.tcpIdleTimeout, logger: logger,
            onReady: { logger.notice("ready", metadata: ["config": "\(config)", "endpoints": "\(catalog.endpoints.count)"]) })
        let services = ServiceGroup(
            services: [dns], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        do {
            try await services.run()
        } catch {
            logger.error("\(error)")
            try? await group.shutdownGracefully()
            throw ExitStatus.runtimeFailure
        }
        try await group.shutdownGracefully()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
