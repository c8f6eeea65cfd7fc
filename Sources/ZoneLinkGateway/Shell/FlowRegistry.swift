import Synchronization
import ZoneLinkCore

/// The NAT table of the whole gateway behind one lock, with the clock that feeds it, and how to
/// close each established flow's sockets when the table says it has been idle too long.
///
/// Every event loop opens and closes flows here; the lock is held for one table operation.
/// The table itself is pure (`NATTable`); this is only where it lives at run time.
public final class FlowRegistry: Sendable {
    private let table: Mutex<NATTable>
    private let closers = Mutex<[FlowKey: @Sendable () -> Void]>([:])
    private let origin = ContinuousClock.now

    /// NAT ports a flow tries before giving up when the port is taken by a socket outside
    /// ZoneLink (EADDRINUSE): each retry gets the pool's next port.
    static let natPortAttempts = 3

    public init(table: NATTable) {
        self.table = Mutex(table)
    }

    /// Time as the table measures it: since this registry was made.
    var now: Duration { ContinuousClock.now - origin }

    func open(
        _ key: FlowKey, target: IPv4Endpoint, upstream: GatewayPlan.Upstream, endpoint: String, backend: Int?
    ) throws(NATError) -> Flow {
        let now = self.now
        return try table.withLock { table throws(NATError) in
            try table.open(
                key, target: target, providerVPC: upstream.providerVPC, natAddresses: upstream.natAddresses,
                endpoint: endpoint, loadBalancer: upstream.loadBalancer, backend: backend, now: now)
        }
    }

    func recordTraffic(_ key: FlowKey, fromClient: Int, fromTarget: Int) {
        let now = self.now
        // False when the flow is already gone (closed or expired): nothing left to count.
        _ = table.withLock { $0.recordTraffic(key, fromClient: fromClient, fromTarget: fromTarget, now: now) }
    }

    /// How to end `key`'s flow: close its sockets. Called once the flow is established.
    func attach(_ key: FlowKey, closer: @escaping @Sendable () -> Void) {
        closers.withLock { $0[key] = closer }
    }

    @discardableResult
    func remove(_ key: FlowKey) -> Flow? {
        closers.withLock { _ = $0.removeValue(forKey: key) }
        return table.withLock { $0.remove(key) }
    }

    /// Ends the flows idle longer than their protocol's timeout (TCP 900 s, UDP 60 s unless
    /// configured): the table forgets them and their sockets are closed.
    func expireIdle() {
        let now = self.now
        let expired = table.withLock { $0.expire(now: now) }
        guard !expired.isEmpty else { return }
        let closing = closers.withLock { closers in expired.compactMap { closers.removeValue(forKey: $0.key) } }
        for close in closing { close() }
    }

    /// Ends every flow `matches` picks (say, the flows of an endpoint that is gone): closes their
    /// sockets, which removes them.
    func close(where matches: (Flow) -> Bool) {
        let keys = table.withLock { $0.flows.filter(matches).map(\.key) }
        let closing = closers.withLock { closers in keys.compactMap { closers[$0] } }
        for close in closing { close() }
    }

    /// The live table, for `zonelink nat list`, with each flow's age.
    public func snapshot() -> [(flow: Flow, age: Duration)] {
        let now = self.now
        return table.withLock { $0.flows }.map { ($0, now - $0.created) }
    }

    public var refusedForExhaustion: Int { table.withLock { $0.refusedForExhaustion } }
}
