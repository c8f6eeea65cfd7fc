import ZoneLinkCore

/// The steps of `FlowOpening` that need only the route (the descriptor budget, the balancer,
/// the NAT table), carried out the same way for TCP and UDP; the transports carry out the one
/// step that needs their sockets, `.connect`.
extension ENIRoute {
    /// Admits a new flow of `key` at this route's ENI and takes what it needs, up to the step
    /// that needs the transport: `.connect`, or `.refuse` once what it held is given back.
    func open(_ key: FlowKey, _ opening: inout FlowOpening, now: Moment) -> FlowStep {
        let decision = Admission.admit(
            protocol: key.proto, port: listener.address.port, source: key.client.address, connection: listener.connection,
            securityGroups: listener.securityGroups)
        return carry(opening.admitted(decision), for: key, &opening, now: now)
    }

    /// Carries out `step` and the ones it leads to while they need only the route; returns
    /// the first that needs the transport (`.connect`, `.relay`) or ends the flow (`.refuse`,
    /// `.close`, already settled).
    func carry(_ step: FlowStep, for key: FlowKey, _ opening: inout FlowOpening, now: Moment) -> FlowStep {
        var step = step
        while true {
            switch step {
            case .takeDescriptors(let count):
                step = opening.descriptorsTaken(flows.takeDescriptors(count, for: key))
            case .pickTarget:
                step = opening.picked(balancer.pick())
            case .takeNATPort(let target, let backend):
                step = opening.natPortTaken(takeNATPort(key, to: target, backend: backend), now: now)
            case .retryWithNextPort(let target, let backend):
                flows.remove(key, reason: .natPortInUse)
                step = opening.natPortTaken(takeNATPort(key, to: target, backend: backend), now: now)
            case .refuse, .close:
                settle(step, for: key)
                return step
            case .connect, .relay:
                return step
            }
        }
    }

    /// Gives back what a refused or ended flow held; a refusal by the NAT table is warned
    /// about (the table counted it; a descriptor refusal was counted and warned about when
    /// the budget said no); every refusal is noticed for the events stream.
    func settle(_ step: FlowStep, for key: FlowKey) {
        switch step {
        case .refuse(let refusal, let held):
            giveBack(held, for: key, reason: .refused)
            if case .nat(let error) = refusal { flows.refused(key, error) }
            flows.notice(refusal, key, endpoint: listener.endpoint)
        case .close(let held):
            giveBack(held, for: key, reason: .ended)
        default:
            break
        }
    }

    private func giveBack(_ holdings: FlowHoldings, for key: FlowKey, reason: FlowCloseReason) {
        if holdings.natEntry { flows.remove(key, reason: reason) }
        if holdings.picked { balancer.release(backend: holdings.backend) }
        if holdings.descriptors > 0 { flows.giveBackDescriptors(holdings.descriptors) }
    }

    private func takeNATPort(_ key: FlowKey, to target: IPv4Endpoint, backend: Int?) -> Result<IPv4Endpoint, NATError> {
        Result { () throws(NATError) in
            try flows.open(
                key, target: target, upstream: balancer.upstream, endpoint: listener.endpoint, account: listener.account, backend: backend
            ).binding.nat
        }
    }
}
