import ZoneLinkCore

/// A point in time, as the distance from an origin the caller chooses (the process start, a
/// test's zero). The NAT table never reads a clock: every mutating call is told `now`, so
/// tests drive time with plain values and expiry is deterministic.
public typealias Moment = Duration

/// One direction of a flow, for TCP half-close.
public enum FlowDirection: Hashable, Sendable {
    /// The consumer's client sent FIN: it will send nothing more to the target.
    case clientToTarget
    /// The target sent FIN: it will send nothing more to the client.
    case targetToClient
}

/// What identifies a flow on the consumer side: the same client address and port in two
/// VPCs are two flows, because consumer VPCs' address spaces overlap freely.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var proto: TransportProtocol
    /// The consumer VPC's ID.
    public var vpc: String
    public var client: IPv4Endpoint
    /// The ENI address and listener port the client connected to.
    public var eni: IPv4Endpoint

    public init(proto: TransportProtocol, vpc: String, client: IPv4Endpoint, eni: IPv4Endpoint) {
        self.proto = proto
        self.vpc = vpc
        self.client = client
        self.eni = eni
    }

    public var description: String { "\(proto) \(vpc) \(client) -> \(eni)" }
}

/// Where a flow goes on the provider side: it leaves from `nat` inside the provider VPC and
/// reaches `target`, so the provider sees a source address of its own VPC, never the
/// consumer's (which may collide with its own).
public struct NATBinding: Hashable, Sendable {
    public var providerVPC: String
    /// The provider-side source address and port the gateway connects (or sends) from.
    public var nat: IPv4Endpoint
    /// A backend server, or the external load balancer's address.
    public var target: IPv4Endpoint

    public init(providerVPC: String, nat: IPv4Endpoint, target: IPv4Endpoint) {
        self.providerVPC = providerVPC
        self.nat = nat
        self.target = target
    }
}

/// A session between a consumer's client and a provider's target through one ENI: a TCP
/// connection, or the UDP datagrams of one client address and port until they go idle.
///
/// A flow is a record, not a relay: it holds no socket. `NATTable` creates, updates and
/// removes flows; the shell that moves bytes reports traffic and closes to it.
public struct Flow: Equatable, Sendable {
    public let key: FlowKey
    public let binding: NATBinding
    /// The endpoint (ID) whose ENI the client connected to.
    public let endpoint: String
    /// The load balancer (ID) the flow was balanced by.
    public let loadBalancer: String
    /// Index of the backend in its listener, or nil when the target is an external load
    /// balancer; connection counts for weighted least connections are kept by this index.
    public let backend: Int?
    /// The consumer account whose endpoint it is (for the attribution log; "" when unknown).
    public let account: String
    public let created: Moment
    public internal(set) var lastActivity: Moment
    public internal(set) var bytesFromClient: Int = 0
    public internal(set) var bytesFromTarget: Int = 0
    /// The client sent FIN (TCP): nothing more flows towards the target.
    public internal(set) var clientToTargetClosed = false
    /// The target sent FIN (TCP): nothing more flows towards the client.
    public internal(set) var targetToClientClosed = false
    /// Creation order within its table; tells a flow from a later one with the same key.
    let serial: UInt64

    init(
        key: FlowKey, binding: NATBinding, endpoint: String, loadBalancer: String, backend: Int?, account: String = "",
        created: Moment, serial: UInt64
    ) {
        self.key = key
        self.binding = binding
        self.endpoint = endpoint
        self.loadBalancer = loadBalancer
        self.backend = backend
        self.account = account
        self.created = created
        self.lastActivity = created
        self.serial = serial
    }

    /// Both directions closed: the flow is over (a half-closed TCP flow still carries data the
    /// other way, so one FIN is not the end).
    public var isClosed: Bool { clientToTargetClosed && targetToClientClosed }

    public func age(at now: Moment) -> Duration { now - created }
    public func idle(at now: Moment) -> Duration { now - lastActivity }
}
