import Logging
import ServiceLifecycle

/// Keeps this host's plane at what the shared store holds: every revision another host
/// commits, and everything after a reconnection, goes through `ControlService.catchUp`, the
/// same one way as a local change (plane → catalog → DNS and the gateway).
///
/// A catch-up that fails (the store went away again, or the stored state does not fit this
/// host's config file) is retried with a growing wait until it succeeds; DNS and the gateway
/// keep serving the last applied catalog meanwhile.
public struct StoreFollower: Service {
    let store: PostgresStateStore
    let control: ControlService
    let logger: Logger
    let onCaughtUp: @Sendable (Int64) async -> Void

    /// - Parameter onCaughtUp: told each revision applied from the store (serve updates
    ///   `systemctl status` with it).
    public init(
        store: PostgresStateStore, control: ControlService, logger: Logger, onCaughtUp: @escaping @Sendable (Int64) async -> Void = { _ in }
    ) {
        self.store = store
        self.control = control
        self.logger = logger
        self.onCaughtUp = onCaughtUp
    }

    /// The longest wait between two attempts of a failed catch-up.
    public static let maxRetryDelay = Duration.seconds(10)

    public func run() async throws {
        let control = control
        let logger = logger
        let name = store.name
        let onCaughtUp = onCaughtUp
        await cancelWhenGracefulShutdown {
            await store.follow { notified in
                var delay = Duration.milliseconds(250)
                while !Task.isCancelled {
                    do {
                        if let revision = try await control.catchUp(to: notified) {
                            logger.notice("applied the catalog of \(name)", metadata: ["revision": "\(revision)"])
                            await onCaughtUp(revision)
                        }
                        return
                    } catch {
                        logger.error("cannot apply what \(name) holds: \(error); the last applied catalog keeps serving, next attempt in \(delay)")
                    }
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, Self.maxRetryDelay)
                }
            }
        }
    }
}
