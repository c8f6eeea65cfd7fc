import Logging
import Synchronization
import ZoneLinkCore

/// A logger for warnings that clients can trigger (refused flows, over-limit connections,
/// rate-limited answers): one line per kind per ten seconds, with the count it stands for.
///
/// Shared by every thread of a subsystem; the lock is held only to update the tally.
public final class ThrottledWarnings: Sendable {
    private let throttle: Mutex<WarningThrottle>
    private let logger: Logger
    private let origin = ContinuousClock.now

    public init(logger: Logger, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.throttle = Mutex(WarningThrottle(interval: interval))
    }

    /// Logs `message` at warning level unless a line of the same `kind` was written within the
    /// interval; then it is only counted. `kind` must be a constant of the code, never input.
    public func warn(_ kind: String, _ message: @autoclosure () -> String, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        let now = ContinuousClock.now - origin
        let decision = throttle.withLock { $0.record(kind, at: now) }
        guard case .log(let count) = decision else { return }
        var fields = metadata()
        fields["warning.kind"] = "\(kind)"
        if count > 1 { fields["warning.count"] = "\(count)" }
        let suffix = count > 1 ? " (\(count) times since the last such line)" : ""
        logger.warning("\(message())\(suffix)", metadata: fields)
    }
}
