import Testing
import ZoneLinkCore
@testable import ZoneLinkGateway

/// The kernel data path's NAT table as conntrack holds it (`KernelFlows`): entries read as the
/// relay's rows, keyed by the consumer link's zone (so overlapping VPCs never mix), and the
/// entries a table change leaves without a port, which are deleted.
@Suite("Kernel flows from conntrack")
struct KernelFlowsTests {
    /// The KernelNATTests topology: vpc-1 (link 1) and vpc-3 (link 3) both reach ENI
    /// 10.10.2.4:80 from 10.10.2.1; vpc-2 (link 2) is the provider, slot 1.
    static func served(_ plan: GatewayPlan) throws -> KernelFlows.Served {
        let input = try KernelNATTests.input(plan, targets: KernelNATTests.both)
        return KernelFlows.Served(ports: input.ports, upstreams: input.upstreams, links: input.links)
    }

    static func entry(zone: UInt16, client: String = "10.10.2.1:40123", eni: String = "10.10.2.4:80", natPort: UInt16, mark: UInt32? = nil)
        -> KernelFlows.ConntrackEntry
    {
        KernelFlows.ConntrackEntry(
            proto: .tcp, zone: zone, mark: mark ?? KernelNAT.mark(link: Int(zone), slot: 1), originalSource: ep(client),
            originalDestination: ep(eni), replySource: ep("192.168.24.200:8080"),
            replyDestination: IPv4Endpoint(address: IPv4Address("192.168.24.240")!, port: natPort), bytesOriginal: 120, bytesReply: 4096,
            startNanoseconds: 1_000_000_000, timeoutSeconds: 899)
    }

    @Test("Two VPCs' identical tuples are two rows, each with its VPC and endpoint (by zone, not by address)")
    func overlappingRows() throws {
        let served = try Self.served(try KernelNATTests.plan())
        let rows = KernelFlows.rows(
            [Self.entry(zone: 1, natPort: 2000), Self.entry(zone: 3, natPort: 2001)], served: served, nowNanoseconds: 3_500_000_000)
        #expect(rows.count == 2)
        let byVPC = Dictionary(uniqueKeysWithValues: rows.map { ($0.key.vpc, $0) })
        #expect(byVPC["vpc-1"]?.endpoint == "ep-consumer1" && byVPC["vpc-3"]?.endpoint == "ep-consumer3", "\(rows)")
        let row = try #require(byVPC["vpc-1"])
        #expect(row.key.client.description == "10.10.2.1:40123" && row.key.eni.description == "10.10.2.4:80" && row.key.proto == .tcp)
        #expect(row.nat.description == "192.168.24.240:2000" && row.target.description == "192.168.24.200:8080")
        #expect(row.bytesFromClient == 120 && row.bytesFromTarget == 4096 && row.providerVPC == "vpc-2")
        #expect(row.age == .milliseconds(2500))
    }

    @Test("Not ZoneLink's: no zone, no mark, or a mark of another link; unknown port: not listed")
    func foreignEntries() throws {
        let served = try Self.served(try KernelNATTests.plan())
        let foreign = [
            Self.entry(zone: 0, natPort: 1, mark: 0x1001),  // the operator's own traffic: default zone
            Self.entry(zone: 1, natPort: 2, mark: 0),  // refused: never admitted, so no mark
            Self.entry(zone: 1, natPort: 3, mark: KernelNAT.mark(link: 3, slot: 1)),  // the mark names another link
        ]
        #expect(foreign.allSatisfy { !$0.isZoneLinks })
        #expect(KernelFlows.rows(foreign, served: served, nowNanoseconds: 0).isEmpty)
        #expect(foreign.allSatisfy { !KernelFlows.isStale($0, served: served) }, "what is not ZoneLink's is never deleted")
        let unknown = Self.entry(zone: 1, eni: "10.10.2.4:81", natPort: 4)
        #expect(KernelFlows.rows([unknown], served: served, nowNanoseconds: 0).isEmpty)
        #expect(KernelFlows.isStale(unknown, served: served))
        #expect(KernelFlows.rows([Self.entry(zone: 1, natPort: 5)], served: served, nowNanoseconds: 0).first?.age == .zero,
                "a clock behind the start gives age 0, not a crash")
    }

    @Test("Rejecting an endpoint makes its entries stale, and only its: the other VPC's identical flow stays")
    func rejectedEndpoint() throws {
        let yaml = KernelNATTests.yaml.replacingOccurrences(
            of: "vpc: vpc-1, securityGroups: [sg-web], connection: Connected", with: "vpc: vpc-1, securityGroups: [sg-web], connection: Rejected")
        let plan = GatewayPlan(catalog: try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t"))
        let served = try Self.served(plan)
        #expect(KernelFlows.isStale(Self.entry(zone: 1, natPort: 2000), served: served), "ep-consumer1 rejected: its flow is deleted")
        #expect(!KernelFlows.isStale(Self.entry(zone: 3, natPort: 2001), served: served), "ep-consumer3's identical flow stays")
        #expect(!KernelFlows.isStale(Self.entry(zone: 1, natPort: 2000), served: try Self.served(try KernelNATTests.plan())))
        #expect(KernelFlows.isStale(Self.entry(zone: 1, natPort: 2000), served: .none), "no table: every ZoneLink flow is stale")
    }
}
