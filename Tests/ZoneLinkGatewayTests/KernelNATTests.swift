import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkGateway

/// The kernel data path's pure core (`KernelNAT`): the table it writes for a plan, checked as
/// text, and (as root with nft installed) checked by nft itself (`nft -c`, nothing applied).
@Suite("Kernel NAT ruleset")
struct KernelNATTests {
    /// Two consumer VPCs with the same addresses (client 10.10.2.1, ENI 10.10.2.4) and one
    /// provider, its service on the kernel data path.
    static let yaml = """
        region: eu-central-1
        domain: privatelink.internal
        accounts:
          - {id: "1111111111111111", name: account-a}
          - {id: "2222222222222222", name: account-b}
          - {id: "3333333333333333", name: account-c}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: ns1
            vswitches: [{id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}]
            securityGroups:
              - id: sg-web
                ingress:
                  - {protocol: tcp, ports: "80", source: 10.10.0.0/16}
                  - {protocol: tcp, ports: "1-1000", source: 10.10.2.0/24}
                  - {protocol: udp, ports: "53", source: 10.10.0.0/16}
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: ns2
            vswitches: [{id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}]
          - id: vpc-3
            account: account-c
            cidr: 10.10.0.0/16
            netns: ns3
            vswitches: [{id: vsw-3b, zone: eu-central-1b, cidr: 10.10.2.0/24}]
            securityGroups:
              - id: sg-all
                ingress: [{protocol: all, source: 10.10.0.0/16}]
        loadBalancers:
          - id: clb-1
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [192.168.24.240]
            listeners:
              - protocol: tcp
                port: 80
                backendPort: 8080
                backends:
                  - {address: 192.168.24.200, weight: 300}
                  - {address: 192.168.24.12, weight: 100}
        endpointServices:
          - id: epsrv-frankfurt1
            account: account-b
            dataPlane: kernel
            resources: [{zone: eu-central-1b, loadBalancer: clb-1}]
            whitelist: ["1111111111111111", "3333333333333333"]
        endpoints:
          - {id: ep-consumer1, account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, securityGroups: [sg-web], connection: Connected,
             zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.4}]}
          - {id: ep-consumer3, account: account-c, service: epsrv-frankfurt1, vpc: vpc-3, securityGroups: [sg-all], connection: Connected,
             zones: [{zone: eu-central-1b, vswitch: vsw-3b, address: 10.10.2.4}]}
          - {id: ep-waiting, account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, securityGroups: [sg-web], connection: Disconnected,
             zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.6}]}
        """

    static func plan() throws -> GatewayPlan {
        GatewayPlan(catalog: try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t"))
    }

    static func input(_ plan: GatewayPlan, targets: [KernelNAT.Target]) throws -> KernelNAT.Input {
        let links = try KernelNAT.assign(["vpc-1", "vpc-2", "vpc-3"], previous: [:], limit: KernelNAT.maxLinks)
        let netns = ["vpc-1": "ns1", "vpc-2": "ns2", "vpc-3": "ns3"]
        return KernelNAT.Input(
            ports: plan.kernelPorts, upstreams: plan.upstreams.filter(\.kernel), targets: ["clb-1#0": targets],
            links: links.reduce(into: [:]) { $0[$1.key] = KernelNAT.Link(vpc: $1.key, netns: netns[$1.key]!, index: $1.value) },
            balancerSlots: ["clb-1": 1], natPorts: 1024...65535)
    }

    static let both = [
        KernelNAT.Target(address: ep("192.168.24.200:8080"), weight: 300), KernelNAT.Target(address: ep("192.168.24.12:8080"), weight: 100),
    ]

    @Test("The plan: kernel ports are not the relay's, ENI and NAT addresses are routed, not added")
    func planSplitsDataPlanes() throws {
        let plan = try Self.plan()
        #expect(plan.eniListeners.isEmpty, "nothing of a kernel service is relayed: \(plan.eniListeners)")
        #expect(plan.kernelPorts.map(\.endpoint).sorted() == ["ep-consumer1", "ep-consumer3"], "Connected endpoints only")
        #expect(Set(plan.kernelENIs.map { "\($0.netns) \($0.address)" }) == ["ns1 10.10.2.4", "ns1 10.10.2.6", "ns3 10.10.2.4"])
        #expect(plan.upstreams.allSatisfy { $0.kernel })
        let added = plan.namespaces.flatMap(\.addresses).map(\.description)
        #expect(!added.contains("192.168.24.240") && !added.contains("10.10.2.4"), "kernel addresses are routes, not local: \(added)")
        #expect(plan.kernelNamespace == "zonelink-gw")
    }

    @Test("Zones per consumer link, admission per security group rule, DNAT by weight, SNAT to the NAT address")
    func table() throws {
        let text = KernelNAT.table(try Self.input(try Self.plan(), targets: Self.both))
        // Links are numbered by VPC ID: vpc-1 → 1, vpc-2 → 2, vpc-3 → 3.
        #expect(text.contains("ct original zone set iifname map { \"zlg1\" : 1, \"zlg2\" : 2, \"zlg3\" : 3 }\n"), "\(text)")
        // Admission, mark, timeout and DNAT in one rule per port, in the NAT chain (which only a
        // flow's first packet walks). vpc-1 admits tcp/80 from two rules' sources (the /24 lies
        // inside the /16, so the /16 stands for both), vpc-3 from its one; the udp rule is not
        // for port 80. Weights 300:100 are 3:1 (divided by their gcd), to the backend port.
        let dnat = "dnat to numgen random mod 4 map { 0-2 : 192.168.24.200 . 8080, 3 : 192.168.24.12 . 8080 }"
        #expect(text.contains("type nat hook prerouting priority dstnat; policy accept;\n    iifname \"zlg1\" ip daddr 10.10.2.4 tcp dport 80 ip saddr 10.10.0.0/16 ct mark set 0x1001 meta mark set 0x1000 ct timeout set \"tcp_idle_900\" \(dnat)\n"), "\(text)")
        #expect(text.contains("iifname \"zlg3\" ip daddr 10.10.2.4 tcp dport 80 ip saddr 10.10.0.0/16 ct mark set 0x1003 meta mark set 0x1000 ct timeout set \"tcp_idle_900\" \(dnat)\n"), "\(text)")
        #expect(!text.contains("10.10.2.0/24"), "\(text)")
        #expect(!text.contains("ct state new iifname") && !text.contains("chain admit"), "admission only in the NAT chain: \(text)")
        #expect(text.contains("ct mark and 0xfffff000 == 0x1000 meta l4proto { tcp, udp } snat to 192.168.24.240:1024-65535\n"), "\(text)")
        // The Disconnected endpoint's ENI gets nothing: refused in the forward chain.
        #expect(!text.contains("10.10.2.6"))
        #expect(text.contains("meta l4proto tcp reject with tcp reset"))
        #expect(text.contains("ct direction reply meta mark set ct mark and 0xfff accept\n"))
        #expect(text.contains("ct status dnat meta mark set ct mark and 0xfffff000 accept\n"))
        #expect(text.contains("meta mark set iifname map { \"zlg1\" : 0x1, \"zlg2\" : 0x2, \"zlg3\" : 0x3 }\n"), "what is not DNATed goes back toward its link, to be refused: \(text)")
    }

    @Test("Sources: one prefix bare, several as a set without the prefixes other ones hold, none admits nothing")
    func sources() {
        let prefix = { (text: String) in IPv4Prefix(text)! }
        #expect(KernelNAT.sourceMatch([]) == nil)
        #expect(KernelNAT.sourceMatch([prefix("10.10.2.0/24")]) == "ip saddr 10.10.2.0/24")
        #expect(KernelNAT.sourceMatch([prefix("10.10.2.0/24"), prefix("10.10.0.0/16"), prefix("10.10.2.7/32")]) == "ip saddr 10.10.0.0/16")
        #expect(KernelNAT.sourceMatch([prefix("192.168.0.0/16"), prefix("10.10.2.0/24"), prefix("10.10.2.0/24"), prefix("172.16.0.1/32")])
            == "ip saddr { 10.10.2.0/24, 172.16.0.1/32, 192.168.0.0/16 }")
        #expect(KernelNAT.sourceMatch([prefix("0.0.0.0/0"), prefix("10.0.0.0/8")]) == "ip saddr 0.0.0.0/0")
    }

    @Test("Admitted flows take ZoneLink's idle timeouts: ct timeout objects from gateway.tcpIdleTimeout and udpIdleTimeout")
    func idleTimeouts() throws {
        var input = try Self.input(try Self.plan(), targets: Self.both)
        input.idleTimeouts = KernelFlows.IdleTimeouts(tcp: .seconds(300), udp: .milliseconds(1500))
        let text = KernelNAT.table(input)
        #expect(text.contains("  ct timeout tcp_idle_300 {\n    protocol tcp\n    l3proto ip\n    policy = { established : 300, retrans : 300, unack : 300 }\n  }\n"), "\(text)")
        // Whole seconds, rounded up: conntrack counts seconds.
        #expect(text.contains("  ct timeout udp_idle_2 {\n    protocol udp\n    l3proto ip\n    policy = { unreplied : 2, replied : 2 }\n  }\n"), "\(text)")
        #expect(KernelFlows.IdleTimeouts(tcp: .zero, udp: .seconds(60)).tcp == 1, "at least a second")
        #expect(KernelFlows.IdleTimeouts(tcp: .seconds(900), udp: .seconds(60)) == KernelFlows.IdleTimeouts(tcp: .seconds(900), udp: .seconds(60)))
    }

    @Test("One target: a plain DNAT; none: no DNAT, the flow is refused")
    func fewTargets() throws {
        let plan = try Self.plan()
        let one = KernelNAT.table(try Self.input(plan, targets: [Self.both[1]]))
        #expect(one.contains("ct timeout set \"tcp_idle_900\" dnat to 192.168.24.12:8080\n"), "\(one)")
        let none = KernelNAT.table(try Self.input(plan, targets: []))
        #expect(!none.contains("dnat to"), "\(none)")
        #expect(!none.contains("ct mark set"), "nothing is admitted where nothing can serve: \(none)")
        #expect(none.contains("meta mark set iifname map"), "the refused flow's reset is routed back by its link: \(none)")
    }

    @Test("The replacement is one transaction that swaps the whole table; removal touches only ZoneLink's table")
    func transaction() throws {
        let text = KernelNAT.replacement(try Self.input(try Self.plan(), targets: Self.both))
        #expect(text.hasPrefix("table ip zonelink\ndelete table ip zonelink\ntable ip zonelink {\n"))
        #expect(KernelNAT.removal == "table ip zonelink\ndelete table ip zonelink\n")
        // Later replacements keep the ct timeout objects open flows use; a changed timeout
        // is a new object, and the old one goes.
        var input = try Self.input(try Self.plan(), targets: Self.both)
        let later = KernelNAT.replacement(input, previous: input)
        #expect(later.hasPrefix("flush table ip zonelink\ntable ip zonelink {\n  ct timeout tcp_idle_900 {"), "\(later)")
        let previous = input
        input.idleTimeouts = KernelFlows.IdleTimeouts(tcp: .seconds(300), udp: .seconds(60))
        let changed = KernelNAT.replacement(input, previous: previous)
        #expect(changed.hasPrefix("flush table ip zonelink\ndelete ct timeout ip zonelink tcp_idle_900\ntable ip zonelink {\n"), "\(changed)")
    }

    @Test("Links and slots keep their numbers; new ones take the lowest free; past the limit, an error")
    func numbering() throws {
        let first = try KernelNAT.assign(["a", "b", "c"], previous: [:], limit: 10)
        #expect(first == ["a": 1, "b": 2, "c": 3])
        let next = try KernelNAT.assign(["c", "d"], previous: first, limit: 10)
        #expect(next == ["c": 3, "d": 1])
        #expect(throws: KernelNATError.self) { try KernelNAT.assign(["a", "b", "c"], previous: [:], limit: 2) }
        let link = KernelNAT.Link(vpc: "v", netns: "n", index: 5)
        #expect(link.gatewayAddress.description == "169.254.0.21" && link.vpcAddress.description == "169.254.0.22")
        #expect(KernelNAT.Link(vpc: "v", netns: "n", index: KernelNAT.maxLinks).vpcAddress.description == "169.254.63.254")
    }

    static let nft: String? = ["/usr/sbin/nft", "/sbin/nft"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test("nft itself accepts the table (nft -c: parsed and checked, nothing applied)",
          .enabled(if: geteuid() == 0, "needs root: nft -c asks the kernel"),
          .enabled(if: nft != nil, "needs nft (Debian nftables; run bash scripts/deps)"))
    func nftAccepts() throws {
        let text = KernelNAT.replacement(try Self.input(try Self.plan(), targets: Self.both))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zonelink-kernelnat-\(getpid()).nft")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.nft!)
        process.arguments = ["-c", "-f", file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "nft -c refused the table:\n\(output)\n\(text)")
    }
}
