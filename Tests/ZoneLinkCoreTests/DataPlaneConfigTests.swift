import Testing
@testable import ZoneLinkCore

/// `endpointServices[].dataPlane`: relay unless the file says kernel; kernel refused where the
/// kernel NAT cannot do what the service asks (PROXY protocol, a bandwidth cap) or where it
/// would have to rewire the host's own namespace or share NAT addresses with the relay.
@Suite("Config: dataPlane")
struct DataPlaneConfigTests {
    func with(_ lines: String...) -> String {
        baseConfig.replacingOccurrences(of: "    zoneAffinity: true\n", with: "    zoneAffinity: true\n" + lines.map { "    \($0)\n" }.joined())
    }

    @Test func relayByDefaultKernelWhenAsked() throws {
        let plain = try Catalog(configuration: Configuration.parse(yaml: baseConfig, file: "t"), file: "t")
        #expect(plain.service("epsrv-frankfurt1")?.dataPlane == .relay)
        let kernel = try Catalog(configuration: Configuration.parse(yaml: with("dataPlane: kernel"), file: "t"), file: "t")
        #expect(kernel.service("epsrv-frankfurt1")?.dataPlane == .kernel)
        let relay = try Catalog(configuration: Configuration.parse(yaml: with("dataPlane: relay"), file: "t"), file: "t")
        #expect(relay.service("epsrv-frankfurt1")?.dataPlane == .relay)
        #expect(kernel.gateway.kernelNamespace == "zonelink-gw", "the gateway namespace's default")
    }

    @Test func unknownDataPlane() {
        let found = issues(with("dataPlane: ebpf"))
        #expect(found.contains { $0.keyPath == "endpointServices[0].dataPlane" && $0.problem.contains("'ebpf' is not a data plane") && $0.hint.contains("relay") },
                "got \(found)")
    }

    @Test("kernel with PROXY protocol v2 or a bandwidth cap: refused, saying why and what to do", arguments: [
        ("proxyProtocol: v2", "cannot send PROXY protocol v2 headers", "proxyProtocol"),
        ("connectionBandwidth: 100", "cannot cap connectionBandwidth", "connectionBandwidth"),
    ])
    func kernelCannot(line: String, problem: String, hint: String) {
        let found = issues(with("dataPlane: kernel", line))
        #expect(found.contains { $0.keyPath == "endpointServices[0].dataPlane" && $0.problem.contains(problem) && $0.hint.contains("dataPlane: relay") && $0.hint.contains(hint) },
                "dataPlane: kernel with \(line): got \(found)")
        #expect(issues(with(line)).isEmpty, "the relay takes \(line)")
    }

    @Test func kernelNeedsNamespaces() {
        let hostConsumer = with("dataPlane: kernel").replacingOccurrences(of: "\n    netns: vpc1", with: "")
        let found = issues(hostConsumer)
        #expect(found.contains { $0.keyPath == "endpointServices[0].dataPlane" && $0.problem.contains("consumer VPC vpc-1") }, "got \(found)")
        let hostProvider = with("dataPlane: kernel").replacingOccurrences(of: "\n    netns: vpc2", with: "")
        #expect(issues(hostProvider).contains { $0.problem.contains("provider VPC vpc-2") }, "got \(issues(hostProvider))")
    }

    @Test func loadBalancerInOneDataPlane() {
        let shared = with("dataPlane: kernel").replacingOccurrences(of: "\nendpoints:\n", with: """

              - id: epsrv-relayed
                account: account-b
                resources: [{zone: eu-central-1b, loadBalancer: clb-1b}]
            endpoints:

            """)
        let found = issues(shared)
        #expect(found.contains { $0.keyPath == "endpointServices[0].dataPlane" && $0.problem.contains("clb-1b also serves epsrv-relayed") }, "got \(found)")
    }

    @Test func kernelNamespaceName() throws {
        let named = baseConfig + "\ngateway:\n  kernelNamespace: zl-test-gw\n"
        #expect(try Catalog(configuration: Configuration.parse(yaml: named, file: "t"), file: "t").gateway.kernelNamespace == "zl-test-gw")
        let bad = issues(baseConfig + "\ngateway:\n  kernelNamespace: a/b\n")
        #expect(bad.contains { $0.keyPath == "gateway.kernelNamespace" }, "got \(bad)")
    }

    @Test func spliceAfterExchanges() throws {
        let catalog = { (yaml: String) in try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t") }
        #expect(try catalog(baseConfig).gateway.spliceAfterExchanges == 0, "off by default")
        #expect(try catalog(baseConfig + "\ngateway:\n  spliceAfterExchanges: 16\n").gateway.spliceAfterExchanges == 16)
        for value in ["-1", "1000001", "often"] {
            let bad = issues(baseConfig + "\ngateway:\n  spliceAfterExchanges: \(value)\n")
            #expect(bad.contains { $0.keyPath == "gateway.spliceAfterExchanges" }, "\(value): got \(bad)")
        }
    }
}
