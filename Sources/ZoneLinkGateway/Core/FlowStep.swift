import ZoneLinkCore

/// What a shell does next for a flow being opened, as `FlowOpening` decides it. Each step is
/// one effect; the shell reports its outcome back to the `FlowOpening`, which answers with
/// the next step.
public enum FlowStep: Equatable, Sendable {
    /// Take this many descriptors from the budget (TCP 2, UDP 1); report with `descriptorsTaken`.
    case takeDescriptors(Int)
    /// Ask the listener's balancer for a target; report with `picked`.
    case pickTarget
    /// Take an entry and NAT port in the NAT table for a flow to `target`; report with
    /// `natPortTaken`.
    case takeNATPort(target: IPv4Endpoint, backend: Int?)
    /// Give back the NAT entry (its port is held by a socket outside ZoneLink) and take the
    /// pool's next port for the same target; report with `natPortTaken`.
    case retryWithNextPort(target: IPv4Endpoint, backend: Int?)
    /// Make the provider-side socket: bind it to `from` and connect it to (TCP) or send to
    /// (UDP) `to`; report with `connected` or `connectFailed`.
    case connect(from: IPv4Endpoint, to: IPv4Endpoint)
    /// The flow is open: relay its bytes.
    case relay
    /// Refuse the flow (TCP: reset, UDP: drop) and give back what it held.
    case refuse(OpeningRefusal, giveBack: FlowHoldings)
    /// The flow ended: close its sockets and give back what it held.
    case close(giveBack: FlowHoldings)

    /// Why the flow was refused, when this step refuses it.
    public var refusal: OpeningRefusal? {
        if case .refuse(let refusal, _) = self { return refusal }
        return nil
    }
}
