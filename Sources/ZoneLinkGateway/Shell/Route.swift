import Logging
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// Everything one ENI listener needs to turn a new connection or datagram into a flow.
///
/// A class, immutable: every new flow takes the current route and keeps it, and sharing one
/// object costs a reference count, where copying the listener's strings and arrays cost a
/// dozen.
final class ENIRoute: Sendable {
    let listener: GatewayPlan.ENIListener
    let balancer: Balancer
    let provider: NetworkNamespace
    let flows: FlowRegistry
    let logger: Logger
    /// The endpoint's bandwidth cap, shared by all its flows; nil: no cap.
    let bandwidth: ConnectionBandwidth?
    /// `gateway.spliceAfterExchanges`: a TCP flow is spliced into the kernel after this many
    /// request–answer exchanges; nil: never.
    let spliceAfterExchanges: Int?

    init(
        listener: GatewayPlan.ENIListener, balancer: Balancer, provider: NetworkNamespace, flows: FlowRegistry, logger: Logger,
        bandwidth: ConnectionBandwidth? = nil, spliceAfterExchanges: Int? = nil
    ) {
        self.listener = listener
        self.balancer = balancer
        self.provider = provider
        self.flows = flows
        self.logger = logger
        self.bandwidth = bandwidth
        self.spliceAfterExchanges = spliceAfterExchanges
    }
}

/// An ENI listener's current route: a reload that changes, say, the security groups replaces
/// it, and the next flow reads the new one while flows already open keep theirs.
final class RouteBox: Sendable {
    private let route: Mutex<ENIRoute>

    init(_ route: ENIRoute) { self.route = Mutex(route) }

    var current: ENIRoute { route.withLock { $0 } }

    func update(_ new: ENIRoute) { route.withLock { $0 = new } }
}
