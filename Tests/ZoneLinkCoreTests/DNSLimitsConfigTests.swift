import Testing
@testable import ZoneLinkCore

/// `dns.limits`, `dns.rateLimit` and `dns.listen[].rateLimit`: defaults, values, and refusals
/// that name the key path.
@Suite("Config: DNS limits")
struct DNSLimitsConfigTests {
    func parse(_ yaml: String) throws -> Configuration { try Configuration.parse(yaml: yaml, file: "test.yaml") }

    func withDNS(_ extra: String) -> String {
        edited("  ttl: 60\n", "  ttl: 60\n" + extra)
    }

    @Test func defaultsWhenAbsent() throws {
        let dns = try parse(baseConfig).dns
        #expect(dns.limits == DNSLimits())
        #expect(dns.limits.tcpConnections == 1000 && dns.limits.tcpConnectionsPerSource == 100)
        #expect(dns.limits.tcpQueuedAnswers == 16 && dns.limits.tcpMessageTimeout == .seconds(2))
        #expect(dns.limits.forwardInFlight == 500 && dns.limits.forwardInFlightPerClient == 50)
        #expect(dns.rateLimit == DNSRateLimit(responsesPerSecond: 1000, slip: 2, ipv4PrefixLength: 24))
        #expect(dns.listen.allSatisfy { $0.rateLimit })
    }

    @Test func valuesAreRead() throws {
        let dns = try parse(withDNS("""
              limits: {tcpConnections: 8, tcpConnectionsPerSource: 2, tcpQueuedAnswers: 4, tcpMessageTimeout: 500ms,
                       forwardInFlight: 20, forwardInFlightPerClient: 5}
              rateLimit: {responsesPerSecond: 50, slip: 3, ipv4PrefixLength: 32}

            """).replacingOccurrences(of: "zone: eu-central-1b}", with: "zone: eu-central-1b, rateLimit: false}")).dns
        var limits = DNSLimits()
        limits.tcpConnections = 8
        limits.tcpConnectionsPerSource = 2
        limits.tcpQueuedAnswers = 4
        limits.tcpMessageTimeout = .milliseconds(500)
        limits.forwardInFlight = 20
        limits.forwardInFlightPerClient = 5
        #expect(dns.limits == limits)
        #expect(dns.rateLimit == DNSRateLimit(responsesPerSecond: 50, slip: 3, ipv4PrefixLength: 32))
        #expect(dns.listen.map(\.rateLimit) == [false])
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var extra: String, keyPath: String, problem: String, hint: String
        init(_ extra: String, _ keyPath: String, _ problem: String, _ hint: String) {
            (self.extra, self.keyPath, self.problem, self.hint) = (extra, keyPath, problem, hint)
        }
        var testDescription: String { "\(keyPath): \(problem)" }
    }

    @Test(arguments: [
        Refusal("  limits: {tcpConections: 5}\n", "dns.limits.tcpConections", "unknown key", "did you mean 'tcpConnections'"),
        Refusal("  rateLimit: {slipp: 1}\n", "dns.rateLimit.slipp", "unknown key", "did you mean 'slip'"),
        Refusal("  limits: {tcpQueuedAnswers: 0}\n", "dns.limits.tcpQueuedAnswers", "out of range", ""),
        Refusal("  limits: {tcpMessageTimeout: soon}\n", "dns.limits.tcpMessageTimeout", "not a duration", ""),
        Refusal("  limits: {tcpConnections: 10, tcpConnectionsPerSource: 20}\n", "dns.limits.tcpConnectionsPerSource", "more than", ""),
        Refusal("  limits: {forwardInFlightPerClient: 600}\n", "dns.limits.forwardInFlightPerClient", "more than", ""),
        Refusal("  rateLimit: {ipv4PrefixLength: 33}\n", "dns.rateLimit.ipv4PrefixLength", "out of range", ""),
        Refusal("  rateLimit: off\n", "dns.rateLimit", "must be a mapping", ""),
    ])
    func refusalsNameTheKeyPath(_ refusal: Refusal) {
        let found = issues(withDNS(refusal.extra))
        #expect(found.contains { $0.keyPath == refusal.keyPath && $0.problem.contains(refusal.problem) && (refusal.hint.isEmpty || $0.hint.contains(refusal.hint)) },
                "got \(found)")
    }

    @Test func aShareLeftAtItsDefaultFollowsASmallerTotal() throws {
        let limits = try parse(withDNS("  limits: {tcpConnections: 10, forwardInFlight: 20}\n")).dns.limits
        #expect(limits.tcpConnectionsPerSource == 10 && limits.forwardInFlightPerClient == 20)
    }

    @Test func listenerRateLimitMustBeABoolean() {
        let found = issues(edited("zone: eu-central-1b}", "zone: eu-central-1b, rateLimit: sometimes}"))
        #expect(found.contains { $0.keyPath == "dns.listen[0].rateLimit" }, "got \(found)")
    }
}
