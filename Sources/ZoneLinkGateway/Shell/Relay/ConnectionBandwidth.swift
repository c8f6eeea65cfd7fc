import Synchronization
import ZoneLinkCore

/// The bandwidth cap of one endpoint connection (`endpointServices[].connectionBandwidth`),
/// shared by every TCP flow of the endpoint on every relay worker: one `TokenBucket` per
/// direction, each filling at the cap. A flow reads from a socket only what its direction's
/// bucket grants; when it is empty the flow stops reading until the bucket has refilled, so
/// the kernel's buffers and TCP's window slow the sender down. Nothing is dropped or reset.
///
/// A reload that changes the cap changes it here, for the flows already open too; one that
/// removes it lifts it (`isLifted`), and the gateway stops handing this cap to new flows.
final class ConnectionBandwidth: Sendable {
    /// What a read waits for when its bucket is empty: a quarter of a burst, so that a paused
    /// flow wakes to move a useful amount rather than a few bytes per wake-up, and a wake-up
    /// that comes late still finds room in the bucket for what arrived meanwhile.
    static let resumeFraction = 4

    private let origin = ContinuousClock.now
    private let state: Mutex<(megabitsPerSecond: Int?, toTarget: TokenBucket, toClient: TokenBucket)>
    private let lifted = Atomic<Bool>(false)

    init(megabitsPerSecond: Int) {
        let bucket = TokenBucket(megabitsPerSecond: megabitsPerSecond, now: .zero)
        state = Mutex((megabitsPerSecond, bucket, bucket))
    }

    /// The cap in Mbit/s; nil once lifted.
    var megabitsPerSecond: Int? { state.withLock { $0.megabitsPerSecond } }

    /// True once the cap was removed: reads take no tokens.
    var isLifted: Bool { lifted.load(ordering: .relaxed) }

    /// A new cap for this connection, from now on, for every flow.
    func update(megabitsPerSecond: Int?) {
        let now = moment(ContinuousClock.now)
        state.withLock { state in
            guard state.megabitsPerSecond != megabitsPerSecond else { return }
            state.megabitsPerSecond = megabitsPerSecond
            if let megabitsPerSecond {
                state.toTarget = TokenBucket(megabitsPerSecond: megabitsPerSecond, now: now)
                state.toClient = TokenBucket(megabitsPerSecond: megabitsPerSecond, now: now)
            }
        }
        lifted.store(megabitsPerSecond == nil, ordering: .relaxed)
    }

    /// Takes up to `wanted` bytes for `direction` at `now`: what may be read, or 0 and when
    /// to try again.
    func take(_ direction: FlowDirection, upTo wanted: Int, at now: ContinuousClock.Instant) -> (granted: Int, retry: ContinuousClock.Instant) {
        if isLifted { return (wanted, now) }
        let at = moment(now)
        return state.withLock { state in
            func take(_ bucket: inout TokenBucket) -> (Int, ContinuousClock.Instant) {
                let granted = bucket.take(upTo: wanted, now: at)
                guard granted == 0 else { return (granted, now) }
                let ready = bucket.whenAvailable(min(wanted, bucket.burst / Self.resumeFraction), now: at)
                return (0, origin + ready)
            }
            switch direction {
            case .clientToTarget: return take(&state.toTarget)
            case .targetToClient: return take(&state.toClient)
            }
        }
    }

    /// Returns what a read was granted and did not move.
    func giveBack(_ direction: FlowDirection, _ unused: Int) {
        guard unused > 0, !isLifted else { return }
        state.withLock { state in
            switch direction {
            case .clientToTarget: state.toTarget.giveBack(unused)
            case .targetToClient: state.toClient.giveBack(unused)
            }
        }
    }

    private func moment(_ instant: ContinuousClock.Instant) -> Moment {
        instant < origin ? .zero : instant - origin
    }
}
