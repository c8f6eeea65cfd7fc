import Synchronization
import ZoneLinkCore

/// The live state of one load balancer listener, shared by every event loop that opens flows
/// to it: the scheduler, each backend's health, whether its zone is shifted away, and each
/// backend's open flows (for `wlc`). One lock, held for a pick or a count change only.
///
/// A backend is eligible for a new flow when it is healthy and its zone is not shifted away;
/// the shift is set by `Gateway.apply` (it changes without changing the listener, so health
/// and counts carry over).
final class Balancer: Sendable {
    let upstream: GatewayPlan.Upstream

    private struct State {
        var scheduler: BackendScheduler
        var health: [HealthState]
        var connections: [Int]
        /// Per backend: its zone is shifted away.
        var shifted: [Bool]
        /// The external load balancer's zone is shifted away.
        var externalShifted = false

        func isEligible(_ index: Int) -> Bool { Self.isEligible(health[index], shifted: shifted[index]) }

        static func isEligible(_ health: HealthState, shifted: Bool) -> Bool { health.isHealthy && !shifted }
    }

    private let state: Mutex<State>

    init(_ upstream: GatewayPlan.Upstream) {
        self.upstream = upstream
        let check = upstream.healthCheck
        self.state = Mutex(State(
            scheduler: BackendScheduler(upstream.scheduler, weights: upstream.backends.map(\.weight)),
            health: upstream.backends.map { _ in
                HealthState(healthyThreshold: check.healthyThreshold, unhealthyThreshold: check.unhealthyThreshold)
            },
            connections: upstream.backends.map { _ in 0 },
            shifted: upstream.backends.map { _ in false }))
    }

    /// Takes the backends (or the external load balancer) of `zones` out of new flows' reach,
    /// and gives back those of other zones.
    func shift(away zones: Set<String>) {
        state.withLock { state in
            state.shifted = upstream.backendZones.map { $0.map(zones.contains) ?? false }
            state.externalShifted = upstream.externalZone.map(zones.contains) ?? false
        }
    }

    /// Where a new flow goes: the external load balancer, or an eligible backend (counted as
    /// open until `release`). Nil when every backend is down, drained or shifted away.
    func pick() -> (target: IPv4Endpoint, backend: Int?)? {
        if let external = upstream.external {
            return state.withLock { $0.externalShifted } ? nil : (external, nil)
        }
        return state.withLock { state in
            guard let index = Self.pick(&state.scheduler, health: state.health, shifted: state.shifted, connections: state.connections)
            else { return nil }
            state.connections[index] += 1
            return (IPv4Endpoint(address: upstream.backends[index].address, port: upstream.backendPort), index)
        }
    }

    /// The scheduler's pick among the eligible backends. The arrays are only read, and no copy
    /// of them outlives the call, so the count that `pick` then raises is changed in place: a
    /// copy of the state kept across that change would make every pick copy its arrays.
    private static func pick(_ scheduler: inout BackendScheduler, health: [HealthState], shifted: [Bool], connections: [Int]) -> Int? {
        scheduler.pick(healthy: { State.isEligible(health[$0], shifted: shifted[$0]) }, connections: { connections[$0] })
    }

    func release(backend: Int?) {
        guard let backend else { return }
        state.withLock { $0.connections[backend] -= 1 }
    }

    /// Records a probe of `backend`; returns the transition, if the probe caused one.
    func record(_ probe: ProbeResult, backend: Int) -> HealthTransition? {
        state.withLock { $0.health[backend].record(probe) }
    }

    /// True when new flows have somewhere to go: an external load balancer outside the shifted
    /// zones, or an eligible backend with a weight.
    var isServing: Bool {
        state.withLock { state in
            upstream.external != nil
                ? !state.externalShifted
                : state.health.indices.contains { state.isEligible($0) && upstream.backends[$0].weight > 0 }
        }
    }

    /// Where the kernel NAT may send new flows now: the eligible backends with their weights
    /// (the kernel picks by weight; it keeps no connection counts, so `wlc` is weighted random
    /// there), or the external load balancer outside the shifted zones.
    /// `shiftedAway`: the zones a catalog about to be applied shifts away (nil: the current ones).
    func kernelTargets(shiftedAway zones: Set<String>? = nil) -> [KernelNAT.Target] {
        if let external = upstream.external {
            let shifted = zones.map { upstream.externalZone.map($0.contains) ?? false } ?? state.withLock { $0.externalShifted }
            return shifted ? [] : [KernelNAT.Target(address: external, weight: 1)]
        }
        return state.withLock { state in
            let shifted = zones.map { zones in upstream.backendZones.map { $0.map(zones.contains) ?? false } } ?? state.shifted
            return upstream.backends.indices.filter { state.health[$0].isHealthy && !shifted[$0] && upstream.backends[$0].weight > 0 }.map {
                KernelNAT.Target(address: IPv4Endpoint(address: upstream.backends[$0].address, port: upstream.backendPort),
                                 weight: upstream.backends[$0].weight)
            }
        }
    }

    var backendHealth: [(backend: Backend, healthy: Bool, shifted: Bool)] {
        state.withLock { state in
            upstream.backends.indices.map { (upstream.backends[$0], state.health[$0].isHealthy, state.shifted[$0]) }
        }
    }
}
