import Testing
@testable import ZoneLinkCore

/// `dns.secondaries`: what is read, what is refused with which key path, and that a secret
/// never appears in an issue or a printed value.
@Suite("Config: DNS secondaries")
struct SecondariesConfigTests {
    /// A secret nobody would type by accident, so that finding it in output means it leaked.
    static let secret = "bGVha2VkLXNlY3JldC1tYXJrZXItZG8tbm90LXByaW50LXRoaXM="

    func withSecondaries(_ entries: String) -> String {
        edited("  ttl: 60\n", "  ttl: 60\n  secondaries:\n" + entries)
    }

    func catalog(_ yaml: String) throws -> Catalog {
        try Catalog(configuration: Configuration.parse(yaml: yaml, file: "test.yaml"), file: "test.yaml")
    }

    @Test func entriesAreRead() throws {
        let dns = try catalog(withSecondaries("""
                - name: vpc1-zone-a
                  key: {name: VPC1-A.key., algorithm: hmac-sha512, secret: "\(Self.secret)"}
                  vpc: vpc-1
                  zone: eu-central-1a
                  notify: ["127.0.0.1:25400"]
                  allowFrom: [127.0.0.0/8, 10.20.0.53]
                - name: vpc2-all
                  key: {name: vpc2.key, secretFile: /etc/zonelink/vpc2.key}
                  vpc: vpc-2
                  allowFrom: [10.20.0.0/16]

            """)).dns
        #expect(dns.secondaries.count == 2)
        let first = dns.secondaries[0]
        #expect(first.name == "vpc1-zone-a" && first.vpc == "vpc-1" && first.zone == "eu-central-1a")
        #expect(first.key.name == "vpc1-a.key" && first.key.algorithm == .hmacSHA512)
        #expect(first.notify.map(\.description) == ["127.0.0.1:25400"])
        #expect(first.allowFrom.map(\.description) == ["127.0.0.0/8", "10.20.0.53/32"])
        guard case .inline(let bytes) = first.key.secret else {
            Issue.record("expected an inline secret, got \(first.key.secret)")
            return
        }
        #expect(bytes.bytes == Array("leaked-secret-marker-do-not-print-this".utf8))
        let second = dns.secondaries[1]
        #expect(second.key.algorithm == .hmacSHA256, "hmac-sha256 is the default")
        #expect(second.key.secret == .file("/etc/zonelink/vpc2.key") && second.zone == nil)
    }

    @Test func secretsAreNeverPrinted() throws {
        let dns = try catalog(withSecondaries("""
                - {name: s, key: {name: k, secret: "\(Self.secret)"}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}

            """)).dns
        for text in [String(describing: dns), String(reflecting: dns), "\(dns.secondaries[0].key)"] {
            #expect(!text.contains(Self.secret) && !text.contains("leaked-secret-marker"), "secret printed: \(text)")
            #expect(!text.contains("108, 101, 97, 107"), "secret bytes printed: \(text)")
        }
        // A bad secret is refused without being echoed.
        let found = issues(withSecondaries("""
                - {name: s, key: {name: k, secret: "not base64 \(Self.secret)"}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}

            """))
        #expect(found.map(\.keyPath) == ["dns.secondaries[0].key.secret"])
        #expect(!found.description.contains(Self.secret), "\(found)")
    }

    @Test(arguments: [
        ("- {name: s, key: {name: k, secret: \"\(secret)\"}, vpc: vpc-9, allowFrom: [10.0.0.0/8]}", "dns.secondaries[0].vpc", "unknown VPC"),
        ("- {name: s, key: {name: k, secret: \"\(secret)\"}, vpc: vpc-1, zone: eu-central-1c, allowFrom: [10.0.0.0/8]}",
         "dns.secondaries[0].zone", "no vSwitch in zone"),
        ("- {name: s, key: {name: k, secret: \"\(secret)\"}, vpc: vpc-1}", "dns.secondaries[0].allowFrom", "missing or empty"),
        ("- {name: s, key: {name: k}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}", "dns.secondaries[0].key.secretFile", "is missing"),
        ("- {name: s, key: {name: k, secret: \"\(secret)\", secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}",
         "dns.secondaries[0].key.secret", "with secretFile"),
        ("- {name: s, key: {name: k, algorithm: hmac-md5, secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}",
         "dns.secondaries[0].key.algorithm", "not allowed"),
        ("- {name: s, key: {name: \"bad key\", secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}",
         "dns.secondaries[0].key.name", "not a domain name"),
        ("- {name: s, key: {name: k, secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/33]}", "dns.secondaries[0].allowFrom[0]", "not a CIDR"),
        ("- {name: s, key: {name: k, secretFile: /x}, vpc: vpc-1, notify: [10.0.0.1], allowFrom: [10.0.0.0/8]}",
         "dns.secondaries[0].notify[0]", "not an address:port"),
        ("- {name: s, key: {name: k, secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/8], zoen: a}", "dns.secondaries[0].zoen", "unknown key"),
        ("""
         - {name: s, key: {name: k, secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}
             - {name: s, key: {name: j, secretFile: /y}, vpc: vpc-2, allowFrom: [10.0.0.0/8]}
         """, "dns.secondaries[1].name", "declared twice"),
        ("""
         - {name: s, key: {name: k, secretFile: /x}, vpc: vpc-1, allowFrom: [10.0.0.0/8]}
             - {name: t, key: {name: k, secretFile: /x}, vpc: vpc-2, allowFrom: [10.0.0.0/8]}
         """, "dns.secondaries[1].key.name", "opens another view"),
    ])
    func refusals(entry: String, keyPath: String, problem: String) {
        let found = issues(withSecondaries("    " + entry + "\n"))
        #expect(found.contains { $0.keyPath == keyPath && $0.problem.contains(problem) }, "expected \(keyPath): …\(problem)…, got \(found)")
        #expect(!found.description.contains(Self.secret))
    }

    @Test func twoSecondariesOfOneViewMayShareAKey() throws {
        let dns = try catalog(withSecondaries("""
                - {name: s, key: {name: k, secretFile: /x}, vpc: vpc-1, zone: eu-central-1a, allowFrom: [10.0.0.1]}
                - {name: t, key: {name: k, secretFile: /x}, vpc: vpc-1, zone: eu-central-1a, allowFrom: [10.0.0.2]}

            """)).dns
        #expect(dns.secondaries.count == 2)
    }
}
