/// Decides which warnings a client can trigger reach the log: the first of a kind, then at
/// most one line per kind per `interval`, carrying how many were held back since the last one.
///
/// A hostile client can make ZoneLink refuse thousands of flows or queries a second; a line
/// for each would fill the journal and cost more than the refusal. Pure: time is passed in,
/// so tests drive it with explicit instants. It does not log; `ThrottledWarnings` does.
public struct WarningThrottle: Sendable {
    /// What to do with one occurrence.
    public enum Decision: Equatable, Sendable {
        /// Write it, saying it stands for `count` occurrences (itself and those held back).
        case log(count: Int)
        /// Hold it back; the next line of its kind counts it.
        case suppress
    }

    private struct Tally {
        var lastLogged: Duration
        var held: Int
    }

    public let interval: Duration
    private var tallies: [String: Tally] = [:]
    /// Kinds are a fixed set of strings in the code, never client input, so this stays small;
    /// the bound only guards against a caller that breaks that rule.
    private let maxKinds = 1024

    public init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Records one occurrence of `kind` at `now` (time since any fixed origin).
    public mutating func record(_ kind: String, at now: Duration) -> Decision {
        if var tally = tallies[kind] {
            if now - tally.lastLogged < interval {
                tally.held += 1
                tallies[kind] = tally
                return .suppress
            }
            tallies[kind] = Tally(lastLogged: now, held: 0)
            return .log(count: tally.held + 1)
        }
        if tallies.count >= maxKinds { tallies.removeAll(keepingCapacity: true) }
        tallies[kind] = Tally(lastLogged: now, held: 0)
        return .log(count: 1)
    }

    /// Occurrences held back since the last line, per kind (for a final flush or a test).
    public func held(_ kind: String) -> Int { tallies[kind]?.held ?? 0 }
}
