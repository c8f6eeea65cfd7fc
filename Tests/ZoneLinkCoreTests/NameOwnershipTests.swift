import Testing
@testable import ZoneLinkCore

/// Names no tenant can take: generated names belong to one endpoint, private domains to one
/// service and only under what the operator allows.
@Suite("Names no tenant can take")
struct NameOwnershipTests {
    /// The base config with a private domain and its allowed suffix.
    static func withPrivateDomain(_ domain: String, suffixes: String = "[provider.example]") -> String {
        edited("zoneAffinity: true", "zoneAffinity: true\n    privateDomain: \(domain)")
            .replacingOccurrences(of: "dns:\n  ttl: 60", with: "dns:\n  ttl: 60\n  privateDomainSuffixes: \(suffixes)")
    }

    static let cases: [BrokenConfig] = [
        .init(rule: "an endpoint ID that is another's zonal name",
              yaml: edited("id: ep-consumer3", "id: ep-consumer1-eu-central-1b"),
              keyPath: "endpoints[1].id", problem: "is a generated name of endpoints[0] 'ep-consumer1'"),
        .init(rule: "a later endpoint whose zonal name is an earlier endpoint's ID",
              yaml: edited("id: ep-consumer1", "id: ep-consumer3-eu-central-1a"),
              keyPath: "endpoints[1].id", problem: "which is the ID of endpoints[0]"),
        .init(rule: "endpoint IDs differing only in case", yaml: edited("id: ep-consumer3", "id: EP-Consumer1"),
              keyPath: "endpoints[1].id", problem: "same DNS label as endpoints[0].id"),
        .init(rule: "a private domain needs an allowed suffix", yaml: withPrivateDomain("github.com"),
              keyPath: "endpointServices[0].privateDomain", problem: "lies under no suffix the operator allows"),
        .init(rule: "no private domain without suffixes", yaml: withPrivateDomain("api.provider.example", suffixes: "[]"),
              keyPath: "endpointServices[0].privateDomain", problem: "lies under no suffix the operator allows"),
        .init(rule: "a private domain above the generated domain", yaml: withPrivateDomain("internal", suffixes: "[internal]"),
              keyPath: "endpointServices[0].privateDomain", problem: "not a domain name"),
        .init(rule: "a private domain containing the generated domain",
              yaml: withPrivateDomain("privatelink.internal", suffixes: "[privatelink.internal]"),
              keyPath: "endpointServices[0].privateDomain", problem: "overlaps the generated domain"),
        .init(rule: "a suffix must be a domain", yaml: withPrivateDomain("api.provider.example", suffixes: "[\"bad domain\"]"),
              keyPath: "dns.privateDomainSuffixes[0]", problem: "not a domain"),
    ]

    @Test(arguments: cases)
    func clashIsRefusedAtItsKeyPath(_ broken: BrokenConfig) {
        expectIssue(broken)
    }

    @Test func aPrivateDomainUnderAnAllowedSuffixIsAccepted() {
        #expect(issues(Self.withPrivateDomain("api.provider.example")) == [])
        #expect(issues(Self.withPrivateDomain("provider.example")) == [])
    }

    @Test func privateDomainsOfTwoServicesMayNotNest() throws {
        var configuration = try Configuration.parse(yaml: Self.withPrivateDomain("provider.example"), file: "t")
        var second = configuration.endpointServices[0]
        second.id = "epsrv-second"
        second.privateDomain = "api.provider.example"
        configuration.endpointServices.append(second)
        do {
            _ = try Catalog(configuration: configuration, file: "t")
            Issue.record("a nested private domain was accepted")
        } catch {
            #expect(error.issues.contains {
                $0.keyPath == "endpointServices[1].privateDomain" && $0.problem.contains("overlaps the private domain provider.example")
            }, "\(error)")
        }
    }

    @Test func differentEndpointsWithOwnZonalNamesAreFine() {
        // ep-consumer1 in zones a and b and ep-consumer3 in zone b: no label is claimed twice.
        #expect(issues(baseConfig) == [])
    }
}
