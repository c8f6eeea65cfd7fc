import Metrics
import NIOCore

/// Counts answered queries by response code and view (`zonelink_dns_queries_total`) and the
/// answers response-rate limiting held back (`zonelink_dns_rrl_total{action}`), without
/// touching shared state per query: a worker tallies locally and hands the totals to
/// swift-metrics about once a second. Not Sendable: one per worker thread or connection.
struct QueryCounts {
    private var tally: [Key: Int] = [:]
    /// The view counted last and its counts by rcode, folded into `tally` when another view is
    /// counted or at a flush: a worker answers one listener's batch at a time, so most counts
    /// are an array increment rather than a dictionary lookup hashing the view's name.
    private var recentView: String? = nil
    private var recent = [Int](repeating: 0, count: 16)
    private var dropped = 0
    private var slipped = 0
    private var lastFlush = ContinuousClock.now

    private struct Key: Hashable {
        var view: String
        var rcode: UInt8
    }

    /// Counts the response in `output` (a whole DNS message starting at `start`).
    mutating func count(_ output: ByteBuffer, at start: Int, view: String?) {
        guard let flags: UInt8 = output.getInteger(at: start + 3) else { return }
        if view != recentView {
            foldRecent()
            recentView = view
        }
        recent[Int(flags & 0x0F)] += 1
    }

    private mutating func foldRecent() {
        for rcode in recent.indices where recent[rcode] > 0 {
            tally[Key(view: recentView ?? "-", rcode: UInt8(rcode)), default: 0] += recent[rcode]
            recent[rcode] = 0
        }
    }

    /// Counts what rate limiting did to one answer.
    mutating func count(_ decision: ResponseRateLimiter.Decision) {
        switch decision {
        case .send: break
        case .slip: slipped += 1
        case .drop: dropped += 1
        }
    }

    /// Hands the tally to swift-metrics when a second has passed (or when `force`).
    mutating func flushIfDue(force: Bool = false) {
        let now = ContinuousClock.now
        foldRecent()
        guard force || now - lastFlush >= .seconds(1), !tally.isEmpty || dropped + slipped > 0 else { return }
        lastFlush = now
        for (action, count) in [("dropped", dropped), ("slipped", slipped)] where count > 0 {
            Counter(label: "zonelink_dns_rrl_total", dimensions: [("action", action)]).increment(by: count)
        }
        dropped = 0
        slipped = 0
        for (key, count) in tally {
            Counter(label: "zonelink_dns_queries_total", dimensions: [("rcode", RCode(rawValue: UInt16(key.rcode)).description), ("view", key.view)])
                .increment(by: count)
        }
        tally.removeAll(keepingCapacity: true)
    }
}
