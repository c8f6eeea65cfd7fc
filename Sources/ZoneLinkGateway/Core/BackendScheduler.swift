import ZoneLinkCore

/// Picks the backend of a listener for each new flow, by the listener's `Scheduler`.
///
/// - `wrr`, smooth weighted round robin (nginx's): each pick adds every eligible backend's
///   weight to its running score, takes the highest score and subtracts the total weight from
///   it. Over a cycle each backend gets its weight's share, and picks of one backend are spread
///   out rather than bunched (weights 300/100 give a a b a, never four in a row).
/// - `wlc`, weighted least connections: the backend with the fewest open connections per unit
///   of weight, compared by cross-multiplication (no division, no rounding); ties go round
///   robin, so equally loaded backends alternate.
///
/// A backend is eligible when it is healthy and its weight is above 0: weight 0 drains it
/// (its open flows stay, it gets no new ones). No eligible backend: nil, and the flow is
/// refused. Health and connection counts are asked for by index, so a pick allocates nothing.
/// The weights are fixed; a changed listener gets a new scheduler.
public struct BackendScheduler: Sendable {
    public let scheduler: Scheduler
    public let weights: [Int]
    /// Smooth WRR's running score per backend.
    private var current: [Int]
    /// WLC: where the next search for the least loaded starts, so ties rotate.
    private var next = 0

    public init(_ scheduler: Scheduler, weights: [Int]) {
        self.scheduler = scheduler
        self.weights = weights
        self.current = Array(repeating: 0, count: weights.count)
    }

    public init(listener: LoadBalancerListener) {
        self.init(listener.scheduler, weights: listener.backends.map(\.weight))
    }

    /// The index of the backend for a new flow, or nil when every backend is down or drained.
    /// - Parameters:
    ///   - healthy: whether backend `i` passes its health checks.
    ///   - connections: backend `i`'s open flows (used by `wlc` only).
    public mutating func pick(healthy: (Int) -> Bool, connections: (Int) -> Int) -> Int? {
        switch scheduler {
        case .wrr: pickSmoothWeighted(healthy: healthy)
        case .wlc: pickLeastConnections(healthy: healthy, connections: connections)
        }
    }

    private mutating func pickSmoothWeighted(healthy: (Int) -> Bool) -> Int? {
        var total = 0
        var best: Int?
        for index in weights.indices where weights[index] > 0 && healthy(index) {
            current[index] += weights[index]
            total += weights[index]
            if best.map({ current[index] > current[$0] }) ?? true { best = index }
        }
        if let best { current[best] -= total }
        return best
    }

    private mutating func pickLeastConnections(healthy: (Int) -> Bool, connections: (Int) -> Int) -> Int? {
        let count = weights.count
        var best: Int?
        var bestConnections = 0
        for step in 0..<count {
            let index = (next + step) % count
            let weight = weights[index]
            guard weight > 0, healthy(index) else { continue }
            let load = connections(index)
            // load / weight < bestLoad / bestWeight, without dividing.
            if let chosen = best, load * weights[chosen] >= bestConnections * weight { continue }
            best = index
            bestConnections = load
        }
        if let best { next = (best + 1) % count }
        return best
    }
}
