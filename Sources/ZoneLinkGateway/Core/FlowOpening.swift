import ZoneLinkCore

/// The decision that turns a new TCP connection or a new UDP client into a flow, step by step,
/// and that ends it: admit by security group, take the flow's descriptors, pick a target,
/// take a NAT port, connect from it (on EADDRINUSE the pool's next port, up to
/// `natPortAttempts`), and refuse with a reason or close, giving back exactly what was taken.
///
/// Written once for both transports: the TCP relay and the UDP handler carry out the steps
/// (`FlowStep`) with their own sockets and report each outcome here. Pure: no sockets, no
/// clock; the one deadline, the connect timeout, is computed from the `now` it is told.
public struct FlowOpening: Equatable, Sendable {
    /// How long a provider may take to accept a TCP connection before the client is reset.
    public static let connectTimeout: Duration = .seconds(5)
    /// NAT ports a flow tries before giving up when a socket outside ZoneLink holds the port
    /// (EADDRINUSE): each retry gets the pool's next one.
    public static let natPortAttempts = 3

    public enum State: Equatable, Sendable {
        case admitting
        case takingDescriptors
        case picking
        case takingNATPort(target: IPv4Endpoint, backend: Int?)
        case connecting(from: IPv4Endpoint, to: IPv4Endpoint, backend: Int?, deadline: Moment)
        case open(from: IPv4Endpoint, to: IPv4Endpoint)
        /// Refused or closed: everything was given back.
        case over
    }

    /// Descriptors the flow's sockets need.
    public let descriptors: Int
    public let connectTimeout: Duration
    public let natPortAttempts: Int
    public private(set) var state: State = .admitting
    public private(set) var holdings = FlowHoldings.nothing
    /// NAT ports taken so far.
    public private(set) var natPortsTried = 0

    public init(descriptors: Int, connectTimeout: Duration = Self.connectTimeout, natPortAttempts: Int = Self.natPortAttempts) {
        self.descriptors = descriptors
        self.connectTimeout = connectTimeout
        self.natPortAttempts = natPortAttempts
    }

    /// The provider side is connected and the flow carries bytes.
    public var isOpen: Bool {
        if case .open = state { return true }
        return false
    }

    /// When a connect in flight times out; nil when none is in flight.
    public var connectDeadline: Moment? {
        if case .connecting(_, _, _, let deadline) = state { return deadline }
        return nil
    }

    /// The admission decision (`Admission.admit`) for the flow.
    public mutating func admitted(_ decision: AdmissionDecision) -> FlowStep {
        guard case .admitting = state else { return end() }
        if case .deny(let reason) = decision { return refuse(.denied(reason)) }
        state = .takingDescriptors
        return .takeDescriptors(descriptors)
    }

    /// Whether the budget gave the flow its descriptors. They are taken before a target is
    /// picked, so a flood past the client share costs no balancer lock.
    public mutating func descriptorsTaken(_ taken: Bool) -> FlowStep {
        guard case .takingDescriptors = state else { return end() }
        guard taken else { return refuse(.outOfDescriptors) }
        holdings.descriptors = descriptors
        state = .picking
        return .pickTarget
    }

    /// The balancer's pick: nil when no backend can take the flow.
    public mutating func picked(_ pick: (target: IPv4Endpoint, backend: Int?)?) -> FlowStep {
        guard case .picking = state else { return end() }
        guard let pick else { return refuse(.noHealthyBackend) }
        holdings.picked = true
        holdings.backend = pick.backend
        state = .takingNATPort(target: pick.target, backend: pick.backend)
        return .takeNATPort(target: pick.target, backend: pick.backend)
    }

    /// The NAT table's answer: the NAT endpoint the flow leaves from, or why there is none.
    /// `now` starts the connect timeout.
    public mutating func natPortTaken(_ result: Result<IPv4Endpoint, NATError>, now: Moment) -> FlowStep {
        guard case .takingNATPort(let target, let backend) = state else { return end() }
        let nat: IPv4Endpoint
        switch result {
        case .failure(let error): return refuse(.nat(error))
        case .success(let endpoint): nat = endpoint
        }
        natPortsTried += 1
        holdings.natEntry = true
        state = .connecting(from: nat, to: target, backend: backend, deadline: now + connectTimeout)
        return .connect(from: nat, to: target)
    }

    /// The provider-side socket is connected (TCP) or bound (UDP).
    public mutating func connected() -> FlowStep {
        guard case .connecting(let nat, let target, _, _) = state else { return end() }
        state = .open(from: nat, to: target)
        return .relay
    }

    /// The provider-side socket failed. `portInUse` (EADDRINUSE): a socket outside ZoneLink
    /// holds the NAT port, which says nothing about the target, so the next port is tried.
    public mutating func connectFailed(portInUse: Bool, reason: String) -> FlowStep {
        guard case .connecting(let nat, let target, let backend, _) = state else { return end() }
        if portInUse && natPortsTried < natPortAttempts {
            holdings.natEntry = false
            state = .takingNATPort(target: target, backend: backend)
            return .retryWithNextPort(target: target, backend: backend)
        }
        return refuse(.unreachable(target: target, from: nat, reason: reason))
    }

    /// The refusal of a connect still in flight at `now` past its deadline; nil otherwise.
    public mutating func expire(now: Moment) -> FlowStep? {
        guard case .connecting(let nat, let target, _, let deadline) = state, deadline <= now else { return nil }
        return refuse(.unreachable(target: target, from: nat, reason: "no answer within \(connectTimeout)"))
    }

    /// The flow ends, whatever step it is at: what it still holds is given back (nothing, when
    /// it was refused or closed already).
    public mutating func end() -> FlowStep {
        defer { giveUp() }
        return .close(giveBack: holdings)
    }

    private mutating func refuse(_ refusal: OpeningRefusal) -> FlowStep {
        defer { giveUp() }
        return .refuse(refusal, giveBack: holdings)
    }

    private mutating func giveUp() {
        holdings = .nothing
        state = .over
    }
}
