import Synchronization

/// Hands out one turn at a time, in arrival order, to async callers: what an actor alone does
/// not give, since it lets another call in at every suspension. `ControlService` takes a turn
/// per change; `PostgresStateStore` per transaction, because its calls share one connection
/// and a second BEGIN on it would join (and a ROLLBACK end) the first one's transaction;
/// `DataPlane` per plan applied, since a catalog and a heartbeat's failover both re-plan.
public final class Turns: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Waits until every earlier caller has called `release()`.
    public func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                if state.busy {
                    state.waiting.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if now { continuation.resume() }
        }
    }

    /// Hands the turn to the next caller waiting (still busy), or frees it.
    public func release() {
        let next = state.withLock { state in
            if state.waiting.isEmpty {
                state.busy = false
                return nil as CheckedContinuation<Void, Never>?
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
