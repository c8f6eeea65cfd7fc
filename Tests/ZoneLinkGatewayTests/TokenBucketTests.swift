// The token bucket behind `connectionBandwidth` (Core/TokenBucket.swift), on a mock clock.
import Testing
@testable import ZoneLinkGateway

@Suite("Token bucket")
struct TokenBucketTests {
    func ms(_ n: Int) -> Moment { .milliseconds(n) }

    @Test("Starts full: a burst at once, then nothing until time passes")
    func burst() {
        var bucket = TokenBucket(bytesPerSecond: 1_000_000, burst: 20_000, now: .zero)
        #expect(bucket.take(upTo: 50_000, now: .zero) == 20_000)
        #expect(bucket.take(upTo: 1, now: .zero) == 0)
    }

    @Test("Refills at the rate: 1 MB/s gives 1,000 bytes per millisecond, never more than the burst")
    func refill() {
        var bucket = TokenBucket(bytesPerSecond: 1_000_000, burst: 20_000, now: .zero)
        _ = bucket.take(upTo: 20_000, now: .zero)
        #expect(bucket.take(upTo: 100_000, now: ms(5)) == 5_000)
        #expect(bucket.take(upTo: 100_000, now: ms(5)) == 0)
        #expect(bucket.take(upTo: 100_000, now: ms(1_000)) == 20_000, "a long pause fills it to the burst, no more")
    }

    @Test("Over a simulated second of greedy reads the bytes taken are the rate plus one burst")
    func sustainedRate() {
        // 50 Mbit/s: 6,250,000 bytes/s.
        var bucket = TokenBucket(megabitsPerSecond: 50, now: .zero)
        var taken = 0
        var now = Moment.zero
        while now < .seconds(1) {
            let got = bucket.take(upTo: 262_144, now: now)
            taken += got
            now = got > 0 ? now : bucket.whenAvailable(bucket.burst / 2, now: now)
        }
        #expect(taken >= 6_250_000 && taken <= 6_250_000 + bucket.burst, "took \(taken) bytes in 1 s, burst \(bucket.burst)")
    }

    @Test("Fractions of a byte are not lost: 1,000 steps of 1 µs at 1 MB/s give 1,000 bytes")
    func fractions() {
        var bucket = TokenBucket(bytesPerSecond: 999_999, burst: 10_000, now: .zero)
        _ = bucket.take(upTo: 10_000, now: .zero)
        var taken = 0
        for step in 1...10_000 { taken += bucket.take(upTo: 10_000, now: .microseconds(step)) }
        #expect((9_998...10_000).contains(taken), "took \(taken) in 10 ms at 999,999 bytes/s")
    }

    @Test("whenAvailable says when the bytes will be there; time running backwards adds nothing")
    func whenAvailable() {
        var bucket = TokenBucket(bytesPerSecond: 1_000_000, burst: 20_000, now: ms(100))
        _ = bucket.take(upTo: 20_000, now: ms(100))
        #expect(bucket.whenAvailable(10_000, now: ms(100)) == ms(110))
        #expect(bucket.whenAvailable(1_000_000, now: ms(100)) == ms(120), "never more than a burst is waited for")
        #expect(bucket.take(upTo: 1_000, now: ms(50)) == 0, "an earlier moment refills nothing")
        #expect(bucket.take(upTo: 1_000, now: ms(101)) == 1_000)
    }

    @Test("Unused grants come back, up to the burst")
    func giveBack() {
        var bucket = TokenBucket(bytesPerSecond: 1_000, burst: 5_000, now: .zero)
        #expect(bucket.take(upTo: 4_000, now: .zero) == 4_000)
        bucket.giveBack(3_000)
        #expect(bucket.tokens == 4_000)
        bucket.giveBack(1_000_000)
        #expect(bucket.tokens == 5_000)
    }

    @Test("Mbit/s: 1 Mbit/s is 125,000 bytes/s; the burst is 50 ms of traffic, at least 16 KiB")
    func megabits() {
        #expect(TokenBucket(megabitsPerSecond: 1_000, now: .zero).bytesPerSecond == 125_000_000)
        #expect(TokenBucket(megabitsPerSecond: 1_000, now: .zero).burst == 6_250_000)
        #expect(TokenBucket(megabitsPerSecond: 1, now: .zero).burst == 16_384)
    }
}
