import ZoneLinkCore

/// The outcome of one health probe (TCP connect or HTTP request within the timeout).
public enum ProbeResult: Hashable, Sendable {
    case success, failure
    /// The probe could not be made: ZoneLink itself had no socket to probe with (EMFILE,
    /// ENFILE, ENOBUFS). It says nothing about the backend, so it neither fails it nor
    /// counts towards recovery; otherwise a descriptor flood would mark every backend down
    /// and switch zone affinity off.
    case inconclusive
}

/// A change of a backend's health, to log and to pass on (scheduler, DNS zone health).
public enum HealthTransition: Hashable, Sendable {
    case becameHealthy, becameUnhealthy
}

/// One backend's health, as its probes decide: `unhealthyThreshold` failures in a row mark a
/// healthy backend unhealthy, `healthyThreshold` successes in a row mark it healthy again; a
/// result that agrees with the current state resets the count, so one lost probe among
/// successes changes nothing.
///
/// A backend starts healthy by default, so a fresh gateway serves at once instead of refusing
/// flows for `healthyThreshold` intervals; a backend that is actually down is marked unhealthy
/// after `unhealthyThreshold` failed probes, and until then its flows fail as they would
/// without health checks. Pass `initiallyHealthy: false` to require proof first.
///
/// Pure: probing and timing are the shell's; this only counts.
public struct HealthState: Hashable, Sendable {
    public let healthyThreshold: Int
    public let unhealthyThreshold: Int
    public private(set) var isHealthy: Bool
    /// Consecutive probe results that disagree with `isHealthy`.
    public private(set) var streak = 0

    /// Thresholds below 1 count as 1 (a single probe decides).
    public init(healthyThreshold: Int, unhealthyThreshold: Int, initiallyHealthy: Bool = true) {
        self.healthyThreshold = max(1, healthyThreshold)
        self.unhealthyThreshold = max(1, unhealthyThreshold)
        self.isHealthy = initiallyHealthy
    }

    public init(_ check: HealthCheck, initiallyHealthy: Bool = true) {
        self.init(
            healthyThreshold: check.healthyThreshold, unhealthyThreshold: check.unhealthyThreshold,
            initiallyHealthy: initiallyHealthy)
    }

    /// Counts a probe; returns a transition only on the probe that crosses a threshold.
    /// An inconclusive probe changes nothing, not even the streak.
    public mutating func record(_ probe: ProbeResult) -> HealthTransition? {
        guard probe != .inconclusive else { return nil }
        let agrees = (probe == .success) == isHealthy
        guard !agrees else {
            streak = 0
            return nil
        }
        streak += 1
        guard streak >= (isHealthy ? unhealthyThreshold : healthyThreshold) else { return nil }
        isHealthy.toggle()
        streak = 0
        return isHealthy ? .becameHealthy : .becameUnhealthy
    }
}
