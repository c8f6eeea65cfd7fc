// Bandwidth per endpoint connection end to end (docs/gateway.md, "Bandwidth per endpoint
// connection"): iperf3 through an ENI in the gateway lab's namespaces, with a config of its own.
//
//   VPC 1 (account A) client 10.10.2.1: ep-bw50 10.10.2.50, ep-bw200 10.10.2.51, ep-bw1000 10.10.2.52
//                                       (services capped at 50, 200 and 1,000 Mbit/s),
//                                       ep-free 10.10.2.53 (a service without a cap)
//   VPC 2 (provider B): iperf3 -s on 192.168.24.53:5201, clb-bw's external address (NAT 192.168.24.240)
//
// Tolerance: the receiver's rate over 4 s must stay at or under the cap plus 5 % (the cap
// holds) and reach at least 60 % of the cap or of the uncapped endpoint's rate measured just
// before, whichever is lower (the cap is not far below what was asked, and a busy machine that
// relays less overall is no false alarm).
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

enum BandwidthLab {
    static let iperf3: String? = Tools.find("iperf3")
    static let server = LabAddress.udpEcho
    static let port = 5201
    static let client = "10.10.2.1"
    static let enis: [(endpoint: String, address: String, cap: Int?)] = [
        ("ep-bw50", "10.10.2.50", 50), ("ep-bw200", "10.10.2.51", 200), ("ep-bw1000", "10.10.2.52", 1000),
        ("ep-free", "10.10.2.53", nil),
    ]

    static func yaml(namespaces ns: [LabVPC: String]) -> String {
        let services = enis.map { eni in
            "  - id: epsrv-\(eni.endpoint.dropFirst(3))\n"
                + "    account: account-b\n"
                + "    resources: [{zone: eu-central-1b, loadBalancer: clb-bw}]\n"
                + "    whitelist: [\"1111111111111111\"]"
                + (eni.cap.map { "\n    connectionBandwidth: \($0)" } ?? "")
        }.joined(separator: "\n")
        let endpoints = enis.map { eni in
            "  - {id: \(eni.endpoint), account: account-a, service: epsrv-\(eni.endpoint.dropFirst(3)), vpc: vpc-1, "
                + "securityGroups: [sg-all], zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(eni.address)}], connection: Connected}"
        }.joined(separator: "\n")
        return """
        # Bandwidth test lab (Tests/ZoneLinkIntegrationTests/BandwidthTests.swift)
        region: eu-central-1
        domain: privatelink.internal
        accounts:
          - {id: "1111111111111111", name: account-a}
          - {id: "2222222222222222", name: account-b}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc1]!)
            vswitches:
              - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}
            securityGroups:
              - id: sg-all
                ingress: [{protocol: tcp, ports: "1-65535", source: 10.10.0.0/16}]
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: \(ns[.vpc2]!)
            vswitches:
              - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
        loadBalancers:
          - id: clb-bw
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(LabAddress.nat)]
            # External (an address, no backends): no health checks, whose connections the
            # iperf3 server would take for a test's.
            address: \(server)
            listeners:
              - {protocol: tcp, port: \(port), backendPort: \(port)}
        endpointServices:
        \(services)
        endpoints:
        \(endpoints)

        """
    }
}

// Nested in the gateway suite, whose traits (root, namespaces, tools) it inherits and whose
// `.serialized` it shares: one lab at a time, so that labs never compete for `ip netns add`.
extension GatewayTests {
@Suite("Bandwidth per endpoint connection in network namespaces",
       .enabled(if: BandwidthLab.iperf3 != nil, "needs iperf3 (apt-get install iperf3)"))
struct BandwidthTests {
    @Test("iperf3 through an ENI at 50, 200 and 1,000 Mbit/s: within the cap (+5 %), at least 60 % of it; both directions; two flows share one cap; an uncapped endpoint is not slowed")
    func caps() async throws {
        let lab = try await offload { try GatewayLab.create(tag: "bandwidth") }
        do {
            let server = try await offload { try lab.startBandwidthLab() }
            var report: [String] = []
            let free = try await offload { try lab.iperf3(to: "10.10.2.53") }
            report.append("ep-free no cap: upload \(String(format: "%.1f", free)) Mbit/s")
            // Not an absolute speed (a busy machine relays less): well above the caps of the
            // endpoints next to it, which share its relay worker and its target.
            #expect(free > 300, "ep-free (no cap) measured \(String(format: "%.1f", free)) Mbit/s, expected more than 1.5 × the 200 Mbit/s cap: another endpoint's cap must not slow it")
            for eni in BandwidthLab.enis {
                guard let cap = eni.cap else { continue }
                let rate = try await offload { try lab.iperf3(to: eni.address) }
                report.append("\(eni.endpoint) cap \(cap): upload \(String(format: "%.1f", rate)) Mbit/s")
                // The cap holds (+5 %); the floor is 60 % of what this machine relays now (the cap, or
                // the uncapped rate if lower), so a busy machine is no false alarm.
                let floor = min(Double(cap), free) * 0.6
                #expect(rate <= Double(cap) * 1.05 && rate >= floor,
                        "\(eni.endpoint): iperf3 upload through a \(cap) Mbit/s cap measured \(String(format: "%.1f", rate)) Mbit/s, expected \(String(format: "%.0f", floor))…\(Double(cap) * 1.05) (uncapped: \(String(format: "%.0f", free)))")
            }
            let download = try await offload { try lab.iperf3(to: "10.10.2.51", reverse: true) }
            report.append("ep-bw200 cap 200: download \(String(format: "%.1f", download)) Mbit/s")
            #expect(download <= 210 && download >= min(200, free) * 0.6, "ep-bw200 download (iperf3 -R) measured \(String(format: "%.1f", download)) Mbit/s, cap 200")
            let parallel = try await offload { try lab.iperf3(to: "10.10.2.51", streams: 2) }
            report.append("ep-bw200 cap 200: 2 streams \(String(format: "%.1f", parallel)) Mbit/s")
            #expect(parallel <= 210 && parallel >= min(200, free) * 0.6, "ep-bw200 with two flows (iperf3 -P 2) measured \(String(format: "%.1f", parallel)) Mbit/s in sum, cap 200 shared")
            print("bandwidth figures: " + report.joined(separator: "; "))
            let (ended, exited, status) = await offloadQuietly { server.terminate() }
            #expect(ended && exited && status == 0, "zonelink serve did not stop cleanly on SIGTERM.\n\(server.logs)")
        } catch {
            await offloadQuietly { lab.tearDown() }
            throw error
        }
        await offloadQuietly { lab.tearDown() }
    }
}
}

extension GatewayLab {
    /// The iperf3 server in VPC 2 and `zonelink serve` on `BandwidthLab`'s config, once every
    /// ENI listens.
    func startBandwidthLab(timeout: Double = 30) throws -> GatewayServer {
        guard let iperf3 = BandwidthLab.iperf3 else { throw HarnessError("iperf3 is not installed") }
        let p = try spawn(.vpc2, name: "iperf3-server", [iperf3, "-s", "-B", BandwidthLab.server, "-p", "\(BandwidthLab.port)"])
        let server = try GatewayServer(lab: self, yaml: BandwidthLab.yaml(namespaces: namespaces))
        self.server = server
        register(server.process.pid)
        var missing: [String] = []
        let ready = try Self.poll(timeout: timeout, every: 0.2) {
            guard server.isRunning, p.isRunning else { return true }
            let vpc1 = try listening(.vpc1, udp: false)
            missing = BandwidthLab.enis.map { "\($0.address):\(BandwidthLab.port)" }.filter { !vpc1.contains($0 + " ") }
            let serverUp = try listening(.vpc2, udp: false).contains("\(BandwidthLab.server):\(BandwidthLab.port) ")
            return missing.isEmpty && serverUp
        }
        guard server.isRunning, p.isRunning, ready else {
            throw HarnessError("bandwidth lab not ready within \(Int(timeout)) s; missing ENI listeners \(missing)\n\(p.output)\n\(server.logs)")
        }
        return server
    }

    /// The receiver's rate, in Mbit/s, of a 4 s iperf3 test from VPC 1's client to `eni`
    /// (`reverse`: the target sends).
    func iperf3(to eni: String, reverse: Bool = false, streams: Int = 1) throws -> Double {
        guard let iperf3 = BandwidthLab.iperf3 else { throw HarnessError("iperf3 is not installed") }
        var arguments = [iperf3, "-c", eni, "-p", "\(BandwidthLab.port)", "-B", BandwidthLab.client, "-t", "4", "-J",
                         "-P", "\(streams)", "--connect-timeout", "3000"]
        if reverse { arguments.append("-R") }
        var r = try exec(.vpc1, arguments, timeout: 30)
        // The server runs one test at a time: a test right after another may find it busy.
        for _ in 0..<10 where r.stdout.contains("server is busy") {
            sleepSeconds(0.5)
            r = try exec(.vpc1, arguments, timeout: 30)
        }
        guard r.exited, r.status == 0, let data = r.stdout.data(using: .utf8),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let end = json["end"] as? [String: Any], let received = end["sum_received"] as? [String: Any],
              let bits = (received["bits_per_second"] as? NSNumber)?.doubleValue
        else { throw HarnessError("iperf3 to \(eni) failed or printed no sum_received:\n\(r.summary)") }
        return bits / 1_000_000
    }
}
