import Logging
import ServiceLifecycle
import ZoneLinkCore

/// When zones are placed on hosts (`host.zones`) and the hosts share a PostgreSQL store: every
/// `interval`, writes what this host carries and which of its ENIs it finds unhealthy, reads
/// the other hosts' last heartbeats, and reports the ENIs that DNS must treat as unhealthy
/// because of them (`Catalog.unhealthyElsewhere`): a zone whose host has been silent longer
/// than `lease` is answered by no one's DNS until a host carries it again.
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
    let report: @Sendable (Set<ENIID>) -> Void
    let logger: Logger

    /// - Parameters:
    ///   - catalog: the catalog served now (its `host` says what this host carries).
    ///   - unhealthyHere: the ENIs this host's gateway reports unhealthy.
    ///   - report: told the ENIs unhealthy because of other hosts, after every heartbeat.
    public init(
        store: PostgresStateStore, catalog: @escaping @Sendable () async -> Catalog, unhealthyHere: @escaping @Sendable () -> Set<ENIID>,
        report: @escaping @Sendable (Set<ENIID>) -> Void, logger: Logger
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
                        let mine = unhealthyHere().filter { host.carries(zone: $0.zone) }.sorted()
                        let peers = try await store.beat(host: host.id, zones: zones, unhealthy: mine)
                        report(catalog.unhealthyElsewhere(peers: peers, lease: Self.lease))
                        if !reachable { logger.notice("heartbeats: \(store.name) answers again") }
                        reachable = true
                    } catch {
                        if reachable {
                            logger.warning("heartbeats: cannot reach \(store.name): \(error); DNS keeps the other hosts' last known health")
                        }
                        reachable = false
                    }
                } else {
                    report([])
                }
                try? await Task.sleep(for: Self.interval)
            }
        }
    }
}
