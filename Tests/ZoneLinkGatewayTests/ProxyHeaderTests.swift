// The PROXY v2 header's bytes (Core/ProxyHeader.swift), checked byte by byte against the
// haproxy.org spec and through the tests' own decoder; and the plan that carries what the
// header needs only to the listeners of services that ask for it.
import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

@Suite("PROXY protocol v2 header")
struct ProxyHeaderTests {
    static let identity = ProxyIdentity(endpoint: "ep-a1", consumerVPC: "vpc-1", consumerAccount: "1111111111111111", zone: "eu-central-1b")

    @Test("PROXY header, byte by byte: signature, 0x21, 0x11, length, addresses, ports, the AWS TLV and ZoneLink's three")
    func bytes() {
        let header = ProxyHeader.proxy(client: ep("10.10.2.1:40000"), eni: ep("10.10.2.4:80"), identity: Self.identity)
        var expected: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        expected += [0x21, 0x11]
        // 12 address bytes + TLVs: 0xEA (3 + 1 + 5), 0xE0 (3 + 1 + 5), 0xE0 (3 + 1 + 16), 0xE0 (3 + 1 + 13).
        let length = 12 + 9 + 9 + 20 + 17
        expected += [UInt8(length >> 8), UInt8(length & 0xFF)]
        expected += [10, 10, 2, 1, 10, 10, 2, 4]
        expected += [0x9C, 0x40, 0x00, 0x50]  // 40000, 80
        expected += [0xEA, 0x00, 0x06, 0x01] + Array("ep-a1".utf8)
        expected += [0xE0, 0x00, 0x06, 0x01] + Array("vpc-1".utf8)
        expected += [0xE0, 0x00, 0x11, 0x02] + Array("1111111111111111".utf8)
        expected += [0xE0, 0x00, 0x0E, 0x03] + Array("eu-central-1b".utf8)
        #expect(header == expected, "got \(header.map { String($0, radix: 16) })")
        #expect(header.count == 16 + length)
    }

    @Test("LOCAL header: signature, 0x20, UNSPEC, length 0")
    func local() {
        #expect(ProxyHeader.local == ProxyV2Decoder.signature + [0x20, 0x00, 0x00, 0x00])
        #expect(ProxyV2Decoder.decode(ProxyHeader.local)
                == .header(ProxyV2Header(command: .local, family: 0, source: nil, destination: nil, tlvs: [], length: 16)))
    }

    @Test("The tests' decoder reads every field back; bytes after the header are not part of it")
    func decodesField() throws {
        let bytes = ProxyHeader.proxy(client: ep("192.168.24.200:65535"), eni: ep("192.168.24.4:8080"), identity: Self.identity)
        guard case .header(let header) = ProxyV2Decoder.decode(bytes + Array("GET /".utf8)) else {
            Issue.record("not decoded: \(ProxyV2Decoder.decode(bytes))")
            return
        }
        #expect(header.command == .proxy && header.family == 0x11 && header.length == bytes.count)
        #expect(header.source == "192.168.24.200:65535" && header.destination == "192.168.24.4:8080")
        #expect(header.endpointID == "ep-a1" && header.consumerVPC == "vpc-1" && header.consumerAccount == "1111111111111111"
                && header.zone == "eu-central-1b")
        #expect(header.tlvs.map(\.type) == [0xEA, 0xE0, 0xE0, 0xE0])
        // Cut anywhere: never mistaken for a whole header.
        for cut in 0..<bytes.count {
            #expect(ProxyV2Decoder.decode(Array(bytes[..<cut])) == .incomplete, "cut at \(cut)")
        }
    }

    @Test("A value past 255 bytes is cut at 255, so the 16-bit lengths never overflow")
    func longValue() {
        let long = String(repeating: "v", count: 70_000)
        let identity = ProxyIdentity(endpoint: long, consumerVPC: long, consumerAccount: long, zone: long)
        let bytes = ProxyHeader.proxy(client: ep("10.0.0.1:1"), eni: ep("10.0.0.2:2"), identity: identity)
        #expect(bytes.count == 16 + 12 + 4 * (3 + 1 + ProxyHeader.maxValueLength))
        guard case .header(let header) = ProxyV2Decoder.decode(bytes) else {
            Issue.record("not decoded")
            return
        }
        #expect(header.consumerVPC == String(repeating: "v", count: 255))
    }

    // MARK: The plan

    static let servicesYAML = SeedFixture.infrastructureYAML + """
        endpointServices:
          - id: epsrv-proxied
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-1b}]
            autoAcceptConnections: true
            whitelist: ["1111111111111111", "3333333333333333"]
            proxyProtocol: v2
          - id: epsrv-plain
            account: account-b
            resources: [{zone: eu-central-1a, loadBalancer: clb-1a}]
            autoAcceptConnections: true
            whitelist: ["1111111111111111"]
        endpoints:
          - {id: ep-one, account: account-a, service: epsrv-proxied, vpc: vpc-1, securityGroups: [sg-1],
             zones: [{zone: eu-central-1b, vswitch: vsw-1b}]}
          - {id: ep-three, account: account-c, service: epsrv-proxied, vpc: vpc-3,
             zones: [{zone: eu-central-1b, vswitch: vsw-3b}]}
          - {id: ep-plain, account: account-a, service: epsrv-plain, vpc: vpc-1, securityGroups: [sg-1],
             zones: [{zone: eu-central-1a, vswitch: vsw-1a}]}

        """

    @Test("The plan gives the listeners of a PROXY v2 service their endpoint, consumer VPC, account and zone; others nothing")
    func plan() throws {
        let catalog = try Catalog(configuration: Configuration.parse(yaml: Self.servicesYAML, file: "t"), file: "t")
        let plan = GatewayPlan(catalog: catalog)
        let byEndpoint = Dictionary(grouping: plan.eniListeners, by: \.endpoint)
        #expect(byEndpoint["ep-one"]?.map(\.proxyIdentity) == [ProxyIdentity(
            endpoint: "ep-one", consumerVPC: "vpc-1", consumerAccount: "1111111111111111", zone: "eu-central-1b")])
        #expect(byEndpoint["ep-three"]?.map(\.proxyIdentity) == [ProxyIdentity(
            endpoint: "ep-three", consumerVPC: "vpc-3", consumerAccount: "3333333333333333", zone: "eu-central-1b")])
        #expect(byEndpoint["ep-plain"]?.map(\.proxyIdentity) == [nil], "a service without the setting: no header")
        let upstreams = Dictionary(grouping: plan.upstreams, by: \.loadBalancer)
        #expect(upstreams["clb-1b"]?.map(\.proxyProtocol) == [true], "health checks of a PROXY v2 service's backends send LOCAL")
        #expect(upstreams["clb-1a"]?.map(\.proxyProtocol) == [false])
        #expect(upstreams["clb-3b"]?.map(\.proxyProtocol) == [false])
    }
}
