import Foundation
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals
import ZoneLinkControl
import ZoneLinkControlServer
import ZoneLinkCore

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
        let serving = "serving \(catalog.endpoints.count) endpoints (\(connected) connected), \(catalog.vpcs.count) VPCs, config serial \(catalog.serial)"
        guard !catalog.zonalShifts.isEmpty else { return serving }
        return serving + "; shifted away: " + catalog.zonalShifts.map(\.zone).joined(separator: ", ")
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
        var refusal = ""
        do {
            try await control.reload(base: Configuration.load(file: configPath), file: configPath)
        } catch let error as ConfigError {
            for line in error.lines { logger.error("reload refused: \(line)") }
            applied = false
            refusal = error.lines.first ?? "\(error)"
        } catch {
            logger.error("reload refused: \(error); the previous configuration keeps running")
            applied = false
            refusal = "\(error)"
        }
        let catalog = await control.catalog
        // Reloads are the operator's events (the file is the operator's).
        control.events.publish(EventDraft(
            .reload, subject: configPath,
            message: applied ? "reloaded \(configPath): serial \(catalog.serial)" : "reload of \(configPath) refused, the previous configuration keeps running: \(refusal)",
            accounts: []))
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
