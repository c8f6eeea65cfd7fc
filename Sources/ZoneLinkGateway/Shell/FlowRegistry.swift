import Logging
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// The NAT table of the whole gateway behind one lock, with the clock that feeds it, and how to
/// close each established flow's sockets when the table says it has been idle too long.
///
/// Every event loop opens and closes flows here; the lock is held for one table operation.
/// The table itself is pure (`NATTable`); this is only where it lives at run time.
///
/// It also holds what every flow's sockets are taken from, the process's `DescriptorBudget`
/// (a TCP flow takes two, a UDP session one), and the throttled `flow refused` warnings that
/// the TCP relay and the UDP handler share.
public final class FlowRegistry: Sendable {
    private let table: Mutex<NATTable>
    private let closers = Mutex<[FlowKey: @Sendable () -> Void]>([:])
    private let origin = ContinuousClock.now
    /// Where opens and closes are recorded; nil: nowhere (tests, tools).
    let attribution: AttributionLog?
    /// Where flows' sockets come from; refusals leave the reserve untouched.
    let budget: DescriptorBudget
    private let warnings: ThrottledWarnings
    /// Told of refused flows, at most once per endpoint and category per 10 s (the events
    /// stream); nil: nobody listens.
    private let onRefused: (@Sendable (RefusedFlows) -> Void)?
    private let refusalNotices = Mutex(WarningThrottle())

    /// - Parameter onRefused: told of refused flows: the first of an endpoint and category,
    ///   then at most one notice per 10 s carrying how many it stands for, so a client that
    ///   opens thousands of connections past a security group costs one event, not thousands.
    public init(
        table: NATTable, budget: DescriptorBudget = .unlimited, logger: Logger = Logger(label: "zonelink.gateway"),
        attribution: AttributionLog? = nil, onRefused: (@Sendable (RefusedFlows) -> Void)? = nil
    ) {
        self.table = Mutex(table)
        self.attribution = attribution
        self.budget = budget
        self.warnings = ThrottledWarnings(logger: logger)
        self.onRefused = onRefused
    }

    /// A flow of `endpoint` was refused (any reason, counted or not): tells `onRefused`,
    /// throttled.
    func notice(_ refusal: OpeningRefusal, _ key: FlowKey, endpoint: String) {
        guard let onRefused else { return }
        let category = refusal.category
        let decision = refusalNotices.withLock { $0.record("\(endpoint) \(category)", at: now) }
        guard case .log(let count) = decision else { return }
        onRefused(RefusedFlows(
            endpoint: endpoint, vpc: key.vpc, eni: key.eni, proto: key.proto, category: category, summary: refusal.summary, count: count))
    }

    /// Takes `count` descriptors for a new flow's sockets; false (counted, warned) when the
    /// client share is spent. The caller refuses the flow then.
    func takeDescriptors(_ count: Int, for key: FlowKey) -> Bool {
        guard budget.acquire(count) else {
            refused(key, .descriptors, "the client share of file descriptors (\(budget.clientLimit)) is in use; "
                + "\(budget.reserve) are kept back (descriptors.reserve): raise LimitNOFILE or wait for flows to end")
            return false
        }
        return true
    }

    func giveBackDescriptors(_ count: Int) { budget.release(count) }

    /// A flow refused by the table: warned about (the count is the table's).
    func refused(_ key: FlowKey, _ error: NATError) {
        warn(key, error.refusal, "\(error)")
    }

    /// A flow refused outside the table: counted and warned about.
    func refused(_ key: FlowKey, _ reason: FlowRefusal, _ why: String) {
        table.withLock { $0.countRefusal(reason) }
        warn(key, reason, why)
    }

    /// One `flow refused` line per reason per 10 s, with the count it stands for: a client
    /// that opens thousands of connections past a limit must not write thousands of lines.
    private func warn(_ key: FlowKey, _ reason: FlowRefusal, _ why: String) {
        warnings.warn("flow refused: \(reason.rawValue)", "flow refused", metadata: [
            "flow.reason": "\(reason.rawValue)", "flow.proto": "\(key.proto.rawValue)", "flow.vpc": "\(key.vpc)",
            "flow.client": "\(key.client)", "flow.eni": "\(key.eni)", "flow.error": "\(why)",
        ])
    }

    /// Time as the table measures it: since this registry was made.
    var now: Duration { ContinuousClock.now - origin }

    func open(
        _ key: FlowKey, target: IPv4Endpoint, upstream: GatewayPlan.Upstream, endpoint: String, account: String = "", backend: Int?
    ) throws(NATError) -> Flow {
        let now = self.now
        let flow = try table.withLock { table throws(NATError) in
            try table.open(
                key, target: target, providerVPC: upstream.providerVPC, natAddresses: upstream.natAddresses,
                endpoint: endpoint, loadBalancer: upstream.loadBalancer, backend: backend, account: account, now: now)
        }
        // A flow the table had already is no new open.
        if let attribution, flow.created == now { attribution.record(.open, flow) }
        return flow
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
    func remove(_ key: FlowKey, reason: FlowCloseReason = .ended) -> Flow? {
        closers.withLock { _ = $0.removeValue(forKey: key) }
        let flow = table.withLock { $0.remove(key) }
        if let attribution, let flow { attribution.record(.close, flow, reason: reason) }
        return flow
    }

    /// Ends the flows idle longer than their protocol's timeout (TCP 900 s, UDP 60 s unless
    /// configured): the table forgets them and their sockets are closed.
    func expireIdle() {
        let now = self.now
        let expired = table.withLock { $0.expire(now: now) }
        guard !expired.isEmpty else { return }
        if let attribution {
            for flow in expired { attribution.record(.close, flow, reason: .idle) }
        }
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

    /// New flows refused since start, by reason.
    public var refusals: [FlowRefusal: Int] { table.withLock { $0.refusals } }
}

/// Flows of one endpoint refused for one reason, as the events stream hears of them.
public struct RefusedFlows: Sendable, Equatable {
    public var endpoint: String
    public var vpc: String
    public var eni: IPv4Endpoint
    public var proto: TransportProtocol
    /// `OpeningRefusal.category`.
    public var category: String
    /// `OpeningRefusal.summary`: fit for both of the endpoint's accounts.
    public var summary: String
    /// Refusals this notice stands for: itself and those held back since the last one.
    public var count: Int
}
