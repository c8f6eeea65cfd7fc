/// When flows may expire: a binary min-heap of (deadline, flow) entries, so `NATTable.expire`
/// looks only at flows that are due instead of scanning all of them.
///
/// Lazy: traffic does not move a flow's entry (that would cost O(log n) per packet). An entry
/// holds the deadline the flow had when it was pushed, which is never later than its real
/// one; when it comes up, the table checks the flow's real deadline and pushes it again if
/// the flow was active meanwhile. Entries of removed flows stay until they come up or the
/// table rebuilds the queue, which it does when stale entries outnumber live flows.
struct ExpiryQueue: Sendable {
    struct Entry: Sendable {
        var deadline: Moment
        var key: FlowKey
        /// The flow's serial: an entry whose serial differs belongs to an earlier flow.
        var serial: UInt64
    }

    private var heap: [Entry] = []

    var count: Int { heap.count }
    var first: Entry? { heap.first }

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        siftUp(heap.count - 1)
    }

    mutating func popFirst() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let entry = heap.removeLast()
        if !heap.isEmpty { siftDown(0) }
        return entry
    }

    /// Replaces every entry, in O(n).
    mutating func rebuild(_ entries: [Entry]) {
        heap = entries
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(index)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            let right = left + 1
            let child = right < heap.count && heap[right].deadline < heap[left].deadline ? right : left
            guard heap[child].deadline < heap[parent].deadline else { return }
            heap.swapAt(child, parent)
            parent = child
        }
    }
}
