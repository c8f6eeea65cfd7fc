import Testing
@testable import ZoneLinkCore

/// A valid config that each case below breaks in one place.
let baseConfig = """
    region: eu-central-1
    domain: privatelink.internal
    dns:
      ttl: 60
      listen:
        - {address: 127.0.0.1:5353, vpc: vpc-1, zone: eu-central-1b}
    accounts:
      - {id: "1111111111111111", name: account-a}
      - {id: "2222222222222222", name: account-b}
      - {id: "3333333333333333", name: account-c}
    vpcs:
      - id: vpc-1
        account: account-a
        cidr: 10.10.0.0/16
        netns: vpc1
        dnsAddress: 10.10.0.2
        vswitches:
          - {id: vsw-1a, zone: eu-central-1a, cidr: 10.10.1.0/24}
          - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}
        securityGroups:
          - id: sg-1
            ingress:
              - {protocol: tcp, ports: "80", source: 10.10.0.0/16}
      - id: vpc-2
        account: account-b
        cidr: 192.168.0.0/16
        netns: vpc2
        vswitches:
          - {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}
          - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
      - id: vpc-3
        account: account-c
        cidr: 10.10.0.0/16
        netns: vpc3
        vswitches:
          - {id: vsw-3b, zone: eu-central-1b, cidr: 10.10.2.0/24}
    loadBalancers:
      - id: clb-1b
        account: account-b
        vpc: vpc-2
        zone: eu-central-1b
        natAddresses: [192.168.24.240]
        listeners:
          - protocol: tcp
            port: 80
            backends:
              - {address: 192.168.24.200, weight: 100}
              - {address: 192.168.24.12, weight: 100}
      - id: clb-1a
        account: account-b
        vpc: vpc-2
        zone: eu-central-1a
        natAddresses: [192.168.23.240]
        address: 192.168.23.100
        listeners:
          - {protocol: tcp, port: 80}
    endpointServices:
      - id: epsrv-frankfurt1
        account: account-b
        resources:
          - {zone: eu-central-1a, loadBalancer: clb-1a}
          - {zone: eu-central-1b, loadBalancer: clb-1b}
        zoneAffinity: true
        whitelist: ["1111111111111111", "3333333333333333"]
    endpoints:
      - id: ep-consumer1
        account: account-a
        service: epsrv-frankfurt1
        vpc: vpc-1
        securityGroups: [sg-1]
        zones:
          - {zone: eu-central-1a, vswitch: vsw-1a}
          - {zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.50}
      - id: ep-consumer3
        account: account-c
        service: epsrv-frankfurt1
        vpc: vpc-3
        zones:
          - {zone: eu-central-1b, vswitch: vsw-3b, address: 10.10.2.50}
    """

/// The base config with `old` replaced by `new`; `old` must occur exactly once.
func edited(_ old: String, _ new: String) -> String {
    precondition(baseConfig.components(separatedBy: old).count == 2, "'\(old)' must occur once in baseConfig")
    return baseConfig.replacingOccurrences(of: old, with: new)
}

func issues(_ yaml: String) -> [ConfigIssue] {
    do {
        _ = try Catalog(configuration: Configuration.parse(yaml: yaml, file: "test.yaml"), file: "test.yaml")
        return []
    } catch {
        return error.issues
    }
}

/// Expects `broken.yaml` to be refused with an issue at its key path naming its problem.
func expectIssue(_ broken: BrokenConfig, sourceLocation: SourceLocation = #_sourceLocation) {
    let found = issues(broken.yaml)
    #expect(found.contains { $0.keyPath == broken.keyPath && $0.problem.contains(broken.problem) },
            "expected \(broken.keyPath): …\(broken.problem)…, got \(found)", sourceLocation: sourceLocation)
}

struct BrokenConfig: CustomTestStringConvertible, Sendable {
    var rule: String
    var yaml: String
    var keyPath: String
    var problem: String
    var testDescription: String { rule }
}

@Suite("Config validation: every rule names the key path")
struct ValidationTests {
    @Test func baseConfigIsValid() throws {
        #expect(issues(baseConfig) == [])
    }

    static let cases: [BrokenConfig] = [
        .init(rule: "unknown key", yaml: edited("zoneAffinity: true", "zoneAfinity: true"),
              keyPath: "endpointServices[0].zoneAfinity", problem: "unknown key"),
        .init(rule: "missing required key", yaml: edited("region: eu-central-1\n", ""), keyPath: "region", problem: "is missing"),
        .init(rule: "wrong type", yaml: edited("ttl: 60", "ttl: soon"), keyPath: "dns.ttl", problem: "whole number"),
        .init(rule: "duplicate VPC ID", yaml: edited("- id: vpc-3", "- id: vpc-2"), keyPath: "vpcs[2].id", problem: "declared twice"),
        .init(rule: "duplicate endpoint ID", yaml: edited("id: ep-consumer3", "id: ep-consumer1"), keyPath: "endpoints[1].id", problem: "declared twice"),
        .init(rule: "unknown account", yaml: edited("account: account-c\n    cidr", "account: account-x\n    cidr"), keyPath: "vpcs[2].account", problem: "unknown account"),
        .init(rule: "account ID form", yaml: edited("\"2222222222222222\", name", "\"22\", name"), keyPath: "accounts[1].id", problem: "not an account ID"),
        .init(rule: "malformed CIDR", yaml: edited("cidr: 192.168.0.0/16", "cidr: 192.168.0.0/33"), keyPath: "vpcs[1].cidr", problem: "not a CIDR block"),
        .init(rule: "CIDR host bits", yaml: edited("cidr: 192.168.0.0/16", "cidr: 192.168.1.0/16"), keyPath: "vpcs[1].cidr", problem: "host bits set"),
        .init(rule: "vSwitch inside its VPC", yaml: edited("cidr: 192.168.23.0/24", "cidr: 172.16.23.0/24"), keyPath: "vpcs[1].vswitches[0].cidr", problem: "not inside the VPC"),
        .init(rule: "vSwitches do not overlap", yaml: edited("cidr: 192.168.23.0/24", "cidr: 192.168.24.0/25"), keyPath: "vpcs[1].vswitches[1].cidr", problem: "overlaps"),
        .init(rule: "ENI address inside its vSwitch", yaml: edited("vswitch: vsw-1b, address: 10.10.2.50", "vswitch: vsw-1b, address: 10.10.3.50"), keyPath: "endpoints[0].zones[1].address", problem: "not inside vSwitch"),
        .init(rule: "NAT address inside its VPC", yaml: edited("[192.168.24.240]", "[10.0.0.240]"), keyPath: "loadBalancers[0].natAddresses[0]", problem: "not inside VPC"),
        .init(rule: "backend inside its VPC", yaml: edited("192.168.24.12, weight", "10.1.1.12, weight"), keyPath: "loadBalancers[0].listeners[0].backends[1].address", problem: "not inside VPC"),
        .init(rule: "address taken twice within a VPC", yaml: edited("dnsAddress: 10.10.0.2", "dnsAddress: 10.10.2.50"), keyPath: "endpoints[0].zones[1].address", problem: "already taken in VPC vpc-1"),
        .init(rule: "address taken twice names the first owner", yaml: edited("dnsAddress: 10.10.0.2", "dnsAddress: 10.10.2.50"), keyPath: "endpoints[0].zones[1].address", problem: "already taken in VPC vpc-1 by vpcs[0].dnsAddress"),
        .init(rule: "an endpoint ID and zone make a zonal label of at most 63 characters", yaml: edited("id: ep-consumer3", "id: ep-" + String(repeating: "c", count: 50)), keyPath: "endpoints[1].zones[0].zone", problem: "is not a DNS label"),
        .init(rule: "endpoint zones are the service's", yaml: edited("{zone: eu-central-1b, vswitch: vsw-3b", "{zone: eu-central-1c, vswitch: vsw-3b"), keyPath: "endpoints[1].zones[0].zone", problem: "no resource in zone 'eu-central-1c'"),
        .init(rule: "at most five security groups", yaml: edited("securityGroups: [sg-1]", "securityGroups: [sg-1, sg-1, sg-1, sg-1, sg-1, sg-1]"), keyPath: "endpoints[0].securityGroups", problem: "has 6 groups"),
        .init(rule: "unknown security group", yaml: edited("securityGroups: [sg-1]", "securityGroups: [sg-9]"), keyPath: "endpoints[0].securityGroups[0]", problem: "unknown security group"),
        .init(rule: "endpoint account on the whitelist", yaml: edited("whitelist: [\"1111111111111111\", \"3333333333333333\"]", "whitelist: [\"1111111111111111\"]"), keyPath: "endpoints[1].account", problem: "not on the whitelist"),
        .init(rule: "resource load balancer in the resource's zone", yaml: edited("{zone: eu-central-1a, loadBalancer: clb-1a}", "{zone: eu-central-1a, loadBalancer: clb-1b}"), keyPath: "endpointServices[0].resources[0].loadBalancer", problem: "is in zone eu-central-1b"),
        .init(rule: "unknown service", yaml: edited("service: epsrv-frankfurt1\n    vpc: vpc-3", "service: epsrv-nowhere\n    vpc: vpc-3"), keyPath: "endpoints[1].service", problem: "unknown endpoint service"),
        .init(rule: "endpoint ID form", yaml: edited("id: ep-consumer3", "id: consumer3"), keyPath: "endpoints[1].id", problem: "not an endpoint ID"),
        .init(rule: "service ID form", yaml: edited("id: epsrv-frankfurt1", "id: frankfurt1"), keyPath: "endpointServices[0].id", problem: "not a service ID"),
        .init(rule: "vSwitch in the ENI's zone", yaml: edited("{zone: eu-central-1a, vswitch: vsw-1a}", "{zone: eu-central-1a, vswitch: vsw-1b}"), keyPath: "endpoints[0].zones[0].vswitch", problem: "is in zone eu-central-1b"),
        .init(rule: "endpoint in its own account's VPC", yaml: edited("vpc: vpc-3\n    zones", "vpc: vpc-1\n    zones"), keyPath: "endpoints[1].vpc", problem: "belongs to another account"),
        .init(rule: "listener VPC exists", yaml: edited("vpc: vpc-1, zone: eu-central-1b}", "vpc: vpc-9, zone: eu-central-1b}"), keyPath: "dns.listen[0].vpc", problem: "unknown VPC"),
        .init(rule: "listener zone in its VPC", yaml: edited("vpc: vpc-1, zone: eu-central-1b}", "vpc: vpc-1, zone: eu-central-1c}"), keyPath: "dns.listen[0].zone", problem: "no vSwitch in zone"),
        .init(rule: "load balancer zone has a vSwitch", yaml: edited("zone: eu-central-1a\n    natAddresses", "zone: eu-central-1c\n    natAddresses"), keyPath: "loadBalancers[1].zone", problem: "no vSwitch in zone"),
        .init(rule: "external load balancer has no backends", yaml: edited("- {protocol: tcp, port: 80}", "- {protocol: tcp, port: 80, backends: [{address: 192.168.23.7}]}"), keyPath: "loadBalancers[1].listeners[0].backends", problem: "has no backends"),
        .init(rule: "built-in load balancer has backends", yaml: edited("\n    address: 192.168.23.100", ""), keyPath: "loadBalancers[1].listeners[0].backends", problem: "is empty"),
        .init(rule: "port range form", yaml: edited("ports: \"80\"", "ports: \"90-80\""), keyPath: "vpcs[0].securityGroups[0].ingress[0].ports", problem: "not a port"),
        .init(rule: "duration form", yaml: edited("port: 80\n        backends", "port: 80\n        healthCheck: {interval: soon}\n        backends"), keyPath: "loadBalancers[0].listeners[0].healthCheck.interval", problem: "not a duration"),
        .init(rule: "hosts without a namespace share addresses",
              yaml: edited("\n    netns: vpc1", "").replacingOccurrences(of: "\n    netns: vpc3", with: ""),
              keyPath: "endpoints[1].zones[0].address", problem: "share the host's addresses"),
    ]

    @Test(arguments: cases)
    func brokenConfigNamesKeyPath(_ broken: BrokenConfig) {
        expectIssue(broken)
    }

    @Test func everyProblemIsReportedNotJustTheFirst() {
        let yaml = edited("ttl: 60", "ttl: soon")
            .replacingOccurrences(of: "zoneAffinity: true", with: "zoneAfinity: true")
            .replacingOccurrences(of: "cidr: 192.168.0.0/16", with: "cidr: 192.168.0.0/33")
        let paths = Set(issues(yaml).map(\.keyPath))
        #expect(paths.isSuperset(of: ["dns.ttl", "endpointServices[0].zoneAfinity", "vpcs[1].cidr"]))
    }

    @Test func typoGetsASuggestion() {
        let found = issues(edited("zoneAffinity: true", "zoneAfinity: true"))
        #expect(found.first?.hint.contains("did you mean 'zoneAffinity'") == true)
    }

    @Test func hostBitsGetTheIntendedBlock() {
        let found = issues(edited("cidr: 192.168.0.0/16", "cidr: 192.168.1.0/16"))
        #expect(found.first?.hint == "did you mean 192.168.0.0/16?")
    }

    @Test func errorLinesHaveFileKeyPathProblemAndHint() {
        let error = ConfigError(file: "zones/x.yaml", issues: [ConfigIssue("vpcs[0].cidr", "bad", hint: "fix it")])
        #expect(error.lines == ["zones/x.yaml: vpcs[0].cidr: bad (fix it)"])
    }

    @Test func overlappingCIDRsBetweenVPCsAreAllowed() throws {
        // vpc-1 and vpc-3 share 10.10.0.0/16 and the ENI address 10.10.2.50, in two namespaces.
        let catalog = try Catalog(configuration: Configuration.parse(yaml: baseConfig, file: "t"), file: "t")
        #expect(catalog.vpc("vpc-1")?.cidr == catalog.vpc("vpc-3")?.cidr)
        #expect(catalog.endpoints[0].enis[1].address == catalog.endpoints[1].enis[0].address)
    }

    @Test func invalidYAMLIsOneClearIssue() {
        let found = issues("region: [unclosed")
        #expect(found.count == 1 && found[0].problem.contains("not valid YAML"))
    }
}

@Suite("ENI address allocation")
struct AllocationTests {
    func catalog(_ yaml: String) throws -> Catalog {
        try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t")
    }

    @Test func lowestFreeAfterTheFirstThree() throws {
        #expect(try catalog(baseConfig).endpoints[0].enis[0].address == IPv4Address("10.10.1.4"))
    }

    @Test func skipsTakenAddresses() throws {
        let yaml = edited("dnsAddress: 10.10.0.2", "dnsAddress: 10.10.1.4")
        #expect(try catalog(yaml).endpoints[0].enis[0].address == IPv4Address("10.10.1.5"))
    }

    @Test func neverTheBroadcastAddressAndAFullVSwitchIsAnError() throws {
        // A /29 holds .0 (network), .1 to .3 (reserved), .4 to .6 (hosts) and .7 (broadcast).
        let small = edited("cidr: 10.10.1.0/24", "cidr: 10.10.1.0/29")
            .replacingOccurrences(of: "dnsAddress: 10.10.0.2", with: "dnsAddress: 10.10.1.4")
        #expect(try catalog(small).endpoints[0].enis[0].address == IPv4Address("10.10.1.5"))
        let more = small + """

              - id: ep-consumer2
                account: account-a
                service: epsrv-frankfurt1
                vpc: vpc-1
                zones: [{zone: eu-central-1a, vswitch: vsw-1a}]
              - id: ep-consumer4
                account: account-a
                service: epsrv-frankfurt1
                vpc: vpc-1
                zones: [{zone: eu-central-1a, vswitch: vsw-1a}]
            """
        let found = issues(more)
        #expect(found.contains { $0.keyPath == "endpoints[3].zones[0]" && $0.problem.contains("no free address") }, "\(found)")
        #expect(found.count == 1, "only ep-consumer4 misses out: \(found)")
    }
}

@Suite("Addresses")
struct AddressTests {
    @Test func strictParsing() {
        #expect(IPv4Address("10.10.2.50")?.value == 0x0A0A_0232)
        for bad in ["10.10.2", "10.10.2.256", "010.1.1.1", "1.2.3.4.5", "a.b.c.d", "", "1..2.3"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
    }

    @Test func prefixContainment() throws {
        let vpc = try #require(IPv4Prefix("10.10.0.0/16"))
        #expect(vpc.contains(IPv4Prefix("10.10.2.0/24")!))
        #expect(!vpc.contains(IPv4Prefix("10.11.0.0/24")!))
        #expect(vpc.contains(IPv4Address("10.10.255.255")!))
        #expect(IPv4Prefix("0.0.0.0/0")!.contains(IPv4Address("8.8.8.8")!))
    }

    @Test func endpointText() {
        #expect(IPv4Endpoint("127.0.0.1:5353")?.port == 5353)
        #expect(IPv4Endpoint("127.0.0.1") == nil)
        #expect(IPv4Endpoint("127.0.0.1:0") == nil)
    }
}
