/// A token bucket of bytes: `bytesPerSecond` tokens flow in, at most `burst` wait, and a read
/// may take only what is there. It caps what one endpoint connection's flows move in one
/// direction (`endpointServices[].connectionBandwidth`). Pure: it never reads a clock; every
/// call is told `now` (any origin, the same for every call), so tests drive time with values.
///
/// Time that runs backwards (two threads' readings of the clock, a moment apart) adds
/// nothing and takes nothing back.
public struct TokenBucket: Equatable, Sendable {
    public let bytesPerSecond: Int
    /// The most bytes that can be taken at once after a pause.
    public let burst: Int
    public private(set) var tokens: Int
    /// The moment `tokens` were last added up to.
    public private(set) var updated: Moment

    /// A bucket that starts full at `now`. `bytesPerSecond` and `burst` are at least 1.
    public init(bytesPerSecond: Int, burst: Int, now: Moment) {
        self.bytesPerSecond = max(1, bytesPerSecond)
        self.burst = max(1, burst)
        self.tokens = self.burst
        self.updated = now
    }

    /// The bucket for a cap in Mbit/s (1 Mbit/s = 125,000 bytes/s) whose burst is
    /// `burstTime` of traffic, at least `minimumBurst` bytes: small enough that the cap holds
    /// within a few percent over seconds (one burst more than the rate, once), large enough
    /// that a relay worker woken tens of milliseconds late on a busy machine loses no tokens
    /// to a full bucket (20 ms lost 15 % at 50 Mbit/s with both cores busy; 50 ms loses none).
    public init(megabitsPerSecond: Int, burstTime: Duration = .milliseconds(50), minimumBurst: Int = 16_384, now: Moment) {
        let rate = max(1, megabitsPerSecond) * 125_000
        let burst = max(minimumBurst, Int(Self.nanoseconds(burstTime) * Int64(rate) / 1_000_000_000))
        self.init(bytesPerSecond: rate, burst: burst, now: now)
    }

    /// Takes up to `wanted` bytes' worth at `now` and says how many it got (0 when empty).
    public mutating func take(upTo wanted: Int, now: Moment) -> Int {
        refill(now: now)
        let granted = min(max(0, wanted), tokens)
        tokens -= granted
        return granted
    }

    /// Gives back what a read was granted and did not use (a short read, nothing to read).
    public mutating func giveBack(_ unused: Int) {
        tokens = min(burst, tokens + max(0, unused))
    }

    /// The moment at which `wanted` bytes (at most `burst`) can be taken, if nothing else
    /// takes any meanwhile: `now` when they are there already.
    public mutating func whenAvailable(_ wanted: Int, now: Moment) -> Moment {
        refill(now: now)
        let missing = min(max(1, wanted), burst) - tokens
        guard missing > 0 else { return now }
        let rate = Int64(bytesPerSecond)
        return now + .nanoseconds((Int64(missing) * 1_000_000_000 + rate - 1) / rate)
    }

    private mutating func refill(now: Moment) {
        guard now > updated else { return }
        let rate = Int64(bytesPerSecond)
        let room = Int64(burst - tokens)
        let elapsed = Self.nanoseconds(now - updated)
        // Full: no arithmetic on long pauses, so nothing can overflow.
        guard elapsed < (room * 1_000_000_000 + rate - 1) / rate else {
            tokens = burst
            updated = now
            return
        }
        let added = elapsed * rate / 1_000_000_000
        guard added > 0 else { return }
        tokens += Int(added)
        // Only the time those whole bytes took: the rest of it counts towards the next ones.
        updated += .nanoseconds(added * 1_000_000_000 / rate)
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
