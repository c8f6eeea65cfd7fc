import Logging
import ServiceLifecycle
import ZoneLinkCore

/// When zones are placed on hosts (`host.zones`) and the hosts share a PostgreSQL store: every
/// `interval`, writes what this host carries and which of its ENIs it finds unhealthy, reads
/// the other hosts' last heartbeats, and reports them: the data plane turns them into the ENIs
/// DNS must treat as unhealthy (`Catalog.unhealthyElsewhere`: a zone whose host has been
/// silent longer than `lease` is answered by no one's DNS until a host carries it again) and
/// into the load balancers that serve from their backup zone (`Catalog.balancerFailover`).
///
/// While this host cannot reach the store it keeps the last report: it cannot tell a dead
/// peer from its own lost link, and answering every zone is the better mistake. (The other
/// hosts, which can reach the store, see this one go silent and answer around it.)
public struct HostHeartbeat: Service {
    /// A host silent for longer counts as down.
    public static let lease = Duration.seconds(10)
    /// How often a host writes its heartbeat and reads the others': a lease holds 5 of them.
    public static let interval = Duration.seconds(2)

    let store: PostgresStateStore
    let catalog: @Sendable () async -> Catalog
    let unhealthyHere: @Sendable () -> Set<ENIID>
    let report: @Sendable ([PeerBeat]?) async -> Void
    let logger: Logger

    /// - Parameters:
    ///   - catalog: the catalog served now (its `host` says what this host carries).
    ///   - unhealthyHere: the ENIs this host's gateway reports unhealthy.
    ///   - report: told the other hosts' heartbeats after every one of this host's; nil when
    ///     this host places no zones (it hears no one).
    public init(
        store: PostgresStateStore, catalog: @escaping @Sendable () async -> Catalog, unhealthyHere: @escaping @Sendable () -> Set<ENIID>,
        report: @escaping @Sendable ([PeerBeat]?) async -> Void, logger: Logger
    ) {
        self.store = store
        self.catalog = catalog
        self.unhealthyHere = unhealthyHere
        self.report = report
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var reachable = true
            while !Task.isCancelled {
                let catalog = await catalog()
                if let host = catalog.host, let zones = host.zones {
                    do {
                        // The gateway judges only the ENIs this host opens (its zones', and those
                        // of balancers serving from their backup zone here).
                        let mine = unhealthyHere().sorted()
                        let peers = try await store.beat(host: host.id, zones: zones, unhealthy: mine)
                        await report(peers)
                        if !reachable { logger.notice("heartbeats: \(store.name) answers again") }
                        reachable = true
                    } catch {
                        if reachable {
                            logger.warning("heartbeats: cannot reach \(store.name): \(error); DNS keeps the other hosts' last known health")
                        }
                        reachable = false
                    }
                } else {
                    await report(nil)
                }
                try? await Task.sleep(for: Self.interval)
            }
        }
    }
}
