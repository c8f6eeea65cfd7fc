import Synchronization
import ZoneLinkCore

/// The live state of one load balancer listener, shared by every event loop that opens flows
/// to it: the scheduler, each backend's health, and each backend's open flows (for `wlc`).
/// One lock, held for a pick or a count change only.
final class Balancer: Sendable {
    let upstream: GatewayPlan.Upstream

    private struct State {
        var scheduler: BackendScheduler
        var health: [HealthState]
        var connections: [Int]
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
            connections: upstream.backends.map { _ in 0 }))
    }

    /// Where a new flow goes: the external load balancer, or a healthy backend (counted as
    /// open until `release`). Nil when every backend is down or drained.
    func pick() -> (target: IPv4Endpoint, backend: Int?)? {
        if let external = upstream.external { return (external, nil) }
        return state.withLock { state in
            let health = state.health
            let connections = state.connections
            guard let index = state.scheduler.pick(healthy: { health[$0].isHealthy }, connections: { connections[$0] }) else {
                return nil
            }
            state.connections[index] += 1
            return (IPv4Endpoint(address: upstream.backends[index].address, port: upstream.backendPort), index)
        }
    }

    func release(backend: Int?) {
        guard let backend else { return }
        state.withLock { $0.connections[backend] -= 1 }
    }

    /// Records a probe of `backend`; returns the transition, if the probe caused one.
    func record(_ probe: ProbeResult, backend: Int) -> HealthTransition? {
        state.withLock { $0.health[backend].record(probe) }
    }

    /// True when new flows have somewhere to go: an external load balancer, or a healthy backend.
    var isServing: Bool {
        upstream.external != nil || state.withLock { state in
            state.health.indices.contains { state.health[$0].isHealthy && upstream.backends[$0].weight > 0 }
        }
    }

    var backendHealth: [(backend: Backend, healthy: Bool)] {
        state.withLock { state in upstream.backends.indices.map { (upstream.backends[$0], state.health[$0].isHealthy) } }
    }
}
