import Testing
@testable import ZoneLinkCore

/// `endpointServices[].connectionBandwidth`: read in Mbit/s, absent means no cap, and a cap
/// that is not a positive whole number up to 100,000 is refused with its key path and rule.
@Suite("Config: connectionBandwidth")
struct BandwidthConfigTests {
    func with(_ line: String) -> String {
        baseConfig.replacingOccurrences(of: "    zoneAffinity: true\n", with: "    zoneAffinity: true\n    \(line)\n")
    }

    @Test func readInMegabitsPerSecond() throws {
        let catalog = try Catalog(configuration: Configuration.parse(yaml: with("connectionBandwidth: 200"), file: "t"), file: "t")
        #expect(catalog.service("epsrv-frankfurt1")?.connectionBandwidth == 200)
        let plain = try Catalog(configuration: Configuration.parse(yaml: baseConfig, file: "t"), file: "t")
        #expect(plain.service("epsrv-frankfurt1")?.connectionBandwidth == nil, "absent: no cap")
    }

    @Test("0, negative, too large or not a number: refused, naming the key and the rule", arguments: [
        ("0", "0 Mbit/s is not a bandwidth cap: a cap is at least 1 Mbit/s"),
        ("-50", "-50 Mbit/s is not a bandwidth cap: a cap is at least 1 Mbit/s"),
        ("100001", "at most 100000"),
        ("fast", "must be a whole number of Mbit/s"),
        ("2.5", "must be a whole number of Mbit/s"),
    ])
    func refused(value: String, problem: String) {
        let found = issues(with("connectionBandwidth: \(value)"))
        #expect(found.contains { $0.keyPath == "endpointServices[0].connectionBandwidth" && $0.problem.contains(problem) && $0.hint.contains("between 1 and 100000") },
                "connectionBandwidth: \(value): got \(found)")
    }
}
