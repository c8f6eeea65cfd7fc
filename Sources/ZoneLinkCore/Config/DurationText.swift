/// Durations as people write them in the config file and on the command line: a positive
/// whole number and a unit, `500ms`, `2s`, `15m`, `1h`. One grammar for every place that takes
/// one, so `healthCheck.interval: 2s` and `zone shift start --expires 2h` read alike.
public enum DurationText {
    /// The units, longest suffix first so that `ms` is not read as `m`.
    static let units: [(suffix: String, milliseconds: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]

    /// What to write, for error hints.
    public static let hint = "write a positive number with a unit: 500ms, 2s, 15m, 1h"

    /// The duration `text` names, or nil when it is not a positive number with a unit (or so
    /// large that it would overflow).
    public static func parse(_ text: String) -> Duration? {
        for unit in units where text.hasSuffix(unit.suffix) {
            let digits = text.dropLast(unit.suffix.count)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let count = Int64(digits), count > 0
            else { return nil }
            let (milliseconds, overflow) = count.multipliedReportingOverflow(by: unit.milliseconds)
            return overflow ? nil : .milliseconds(milliseconds)
        }
        return nil
    }
}
