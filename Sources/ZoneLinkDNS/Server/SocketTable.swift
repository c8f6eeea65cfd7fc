import Synchronization

/// The UDP sockets each worker thread serves, replaced as a whole when listeners change.
///
/// Workers check a generation number each time they wake (one atomic load) and copy their
/// list only when it changed. A socket taken out of the table is closed only after every
/// worker has moved past it, so no worker ever polls a closed (or reused) descriptor.
final class SocketTable: Sendable {
    private let perWorker: Mutex<[[DatagramSocket]]>
    private let generation = Atomic<Int>(0)
    private let seen: Mutex<[Int]>

    init(workers: Int) {
        self.perWorker = Mutex(Array(repeating: [], count: workers))
        self.seen = Mutex(Array(repeating: 0, count: workers))
    }

    var workers: Int { perWorker.withLock { $0.count } }

    /// Replaces every worker's list; returns the generation to wait for.
    func publish(_ update: (inout [[DatagramSocket]]) -> Void) -> Int {
        perWorker.withLock { update(&$0) }
        return generation.add(1, ordering: .releasing).newValue
    }

    /// The worker's list, if a newer one was published since `known`.
    func refresh(worker: Int, known: inout Int) -> [DatagramSocket]? {
        let now = generation.load(ordering: .acquiring)
        guard now != known else { return nil }
        known = now
        let sockets = perWorker.withLock { $0[worker] }
        seen.withLock { $0[worker] = now }
        return sockets
    }

    /// Waits (up to `limit`) until every worker has taken generation `wanted`.
    func waitUntilSeen(_ wanted: Int, limit: Duration = .seconds(2)) async {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if seen.withLock({ $0.allSatisfy { $0 >= wanted } }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
