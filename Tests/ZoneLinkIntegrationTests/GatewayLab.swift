// The gateway's test lab: the seed topology plus overlapping consumers, each VPC a network
// namespace of its own, with real peers (nginx, HAProxy, a UDP echo server in python3) and
// real clients (curl, dig) run inside the namespaces with `ip netns exec`.
//
//   VPC 1  consumer, account A, 10.10.0.0/16    client 10.10.2.1 (zone b), 10.10.1.7 (zone a),
//                                                DNS 10.10.0.2, endpoints ep-consumer1 (10.10.2.4),
//                                                ep-no80 (10.10.2.5), ep-waiting (10.10.2.6,
//                                                Disconnected), ep-external (10.10.2.7)
//   VPC 2  provider, account B, 192.168.0.0/16  nginx "ECS 2" 192.168.24.200:80, "ECS 3" 192.168.24.12:80,
//                                                UDP echo 192.168.24.53:5353, HAProxy 192.168.24.100:8080,
//                                                NAT 192.168.24.240 (clb-1), 192.168.24.241 (clb-ext)
//   VPC 3  consumer, account C, 10.10.0.0/16    client 10.10.2.1, DNS 10.10.0.2, ep-consumer3 (10.10.2.4)
//   VPC 4  consumer, account D, 192.168.0.0/16  client 192.168.24.200, DNS 192.168.0.2, ep-consumer4 (192.168.24.4)
//
// Every lab has its own namespaces (`zl<4 hex>-vpcN`) and processes, and removes them when it
// ends, also when a test fails; a lab left behind by a killed test run is swept by the next one.
import Foundation
import ZoneLinkTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Requirements

/// Why the gateway tests can or cannot run here. Each check is one suite trait, so a skipped
/// run says which requirement was missing.
enum GatewayLabRequirements {
    static let isRoot: Bool = geteuid() == 0
    static let ipPath: String? = Tools.find("ip")
    static let nginx = Tools.find("nginx")
    static let haproxy = Tools.find("haproxy")
    static let curl = Tools.find("curl")
    static let ss = Tools.find("ss")
    /// The system python3 (a pyenv shim in PATH works too, but starts slower).
    static let python3: String? = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")
        ? "/usr/bin/python3" : Tools.find("python3")

    static let missingTools: [String] = {
        var missing: [String] = []
        if nginx == nil { missing.append("nginx") }
        if haproxy == nil { missing.append("haproxy") }
        if curl == nil { missing.append("curl") }
        if Tools.dig == nil { missing.append("dig") }
        if python3 == nil { missing.append("python3") }
        if ss == nil { missing.append("ss") }
        return missing
    }()
    static var toolsPresent: Bool { missingTools.isEmpty }

    /// True when a namespace can be created, entered and deleted (root and a kernel that allows it).
    static let netnsWorks: Bool = {
        guard isRoot, let ip = ipPath else { return false }
        let name = "zlprobe\(getpid() % 100_000)"
        defer { _ = try? runProcessBlocking(ip, ["netns", "del", name], timeout: 10) }
        guard let add = try? runProcessBlocking(ip, ["netns", "add", name], timeout: 60), add.exited, add.status == 0,
              let exec = try? runProcessBlocking(ip, ["netns", "exec", name, "true"], timeout: 60), exec.exited, exec.status == 0
        else { return false }
        return true
    }()
}

/// The last `n` characters of a log.
func capTail(_ s: String, _ n: Int) -> String {
    s.count <= n ? s : "…(\(s.count - n) characters before)\n" + String(s.suffix(n))
}

// MARK: - Topology

enum LabVPC: String, CaseIterable, Sendable {
    case vpc1, vpc2, vpc3, vpc4
    var id: String { "vpc-" + rawValue.dropFirst(3) }
}

/// A consumer of the lab: its namespace, client address, DNS address and endpoint.
struct LabConsumer: Sendable, CustomStringConvertible {
    var vpc: LabVPC
    var client: String
    var dns: String
    var endpoint: String
    var eni: String
    var name: String { "\(endpoint).epsrv-frankfurt1.eu-central-1.privatelink.internal" }
    var description: String { "\(vpc.id) (client \(client), \(endpoint) at \(eni))" }

    static let vpc1 = LabConsumer(vpc: .vpc1, client: "10.10.2.1", dns: "10.10.0.2", endpoint: "ep-consumer1", eni: "10.10.2.4")
    static let vpc3 = LabConsumer(vpc: .vpc3, client: "10.10.2.1", dns: "10.10.0.2", endpoint: "ep-consumer3", eni: "10.10.2.4")
    static let vpc4 = LabConsumer(vpc: .vpc4, client: "192.168.24.200", dns: "192.168.0.2", endpoint: "ep-consumer4", eni: "192.168.24.4")
    static let all = [vpc1, vpc3, vpc4]
}

enum LabAddress {
    static let ecs2 = "192.168.24.200"
    static let ecs3 = "192.168.24.12"
    static let udpEcho = "192.168.24.53"
    static let haproxy = "192.168.24.100"
    static let haproxyPort = 8080
    static let nat = "192.168.24.240"
    static let natExternal = "192.168.24.241"
    /// VPC 1: a client in zone a (vsw-1a), allowed on port 80 by ep-no80's source rule.
    static let zoneAClient = "10.10.1.7"
    static let eniNo80 = "10.10.2.5"
    static let eniWaiting = "10.10.2.6"
    static let eniExternal = "10.10.2.7"
    static let udpPort = 5353
    /// clb-1's TCP listener in front of the half-close peer (on the UDP echo host).
    static let halfClosePort = 7000
    /// clb-1's TCP listener in front of the conversation peer (on the UDP echo host).
    static let conversationPort = 7001
    /// clb-1's listener with an HTTP health check (`/healthz`: 200 on ECS 2, 503 on ECS 3), to backend port 80.
    static let httpCheckedPort = 8081
}

/// One nginx backend of clb-1.
enum LabBackend: String, CaseIterable, Sendable {
    case ecs2, ecs3
    var address: String { self == .ecs2 ? LabAddress.ecs2 : LabAddress.ecs3 }
    var label: String { self == .ecs2 ? "ECS 2" : "ECS 3" }
}

/// The config under test. Health checks are fast (1 s, thresholds 2/2) to keep the suite short.
enum LabConfig {
    static let interval = 1.0
    static let unhealthyThreshold = 2.0
    static let healthyThreshold = 2.0

    static func yaml(namespaces ns: [LabVPC: String]) -> String {
        """
        # ZoneLink gateway integration test lab (Tests/ZoneLinkIntegrationTests/GatewayLab.swift)
        region: eu-central-1
        domain: privatelink.internal
        dns:
          ttl: 60
        accounts:
          - {id: "1111111111111111", name: account-a}
          - {id: "2222222222222222", name: account-b}
          - {id: "3333333333333333", name: account-c}
          - {id: "4444444444444444", name: account-d}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc1]!)
            dnsAddress: 10.10.0.2
            vswitches:
              - {id: vsw-1a, zone: eu-central-1a, cidr: 10.10.1.0/24}
              - {id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}
            securityGroups:
              - id: sg-web
                ingress:
                  - {protocol: tcp, ports: "80", source: 10.10.0.0/16}
                  - {protocol: udp, ports: "5353", source: 10.10.0.0/16}
                  - {protocol: tcp, ports: "\(LabAddress.halfClosePort)", source: 10.10.0.0/16}
                  - {protocol: tcp, ports: "\(LabAddress.conversationPort)", source: 10.10.0.0/16}
                  - {protocol: tcp, ports: "\(LabAddress.httpCheckedPort)", source: 10.10.0.0/16}
              # Port 80 over TCP only from zone a: the rest is another port, another protocol.
              - id: sg-no80
                ingress:
                  - {protocol: tcp, ports: "81-65535", source: 10.10.0.0/16}
                  - {protocol: udp, ports: "80", source: 10.10.0.0/16}
                  - {protocol: tcp, ports: "1-80", source: 10.10.1.0/24}
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: \(ns[.vpc2]!)
            vswitches:
              - {id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}
          - id: vpc-3
            account: account-c
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc3]!)
            dnsAddress: 10.10.0.2
            vswitches:
              - {id: vsw-3b, zone: eu-central-1b, cidr: 10.10.2.0/24}
            securityGroups:
              - id: sg-web
                ingress:
                  - {protocol: all, source: 10.10.0.0/16}
          - id: vpc-4
            account: account-d
            cidr: 192.168.0.0/16
            netns: \(ns[.vpc4]!)
            dnsAddress: 192.168.0.2
            vswitches:
              - {id: vsw-4b, zone: eu-central-1b, cidr: 192.168.24.0/24}
            securityGroups:
              - id: sg-web
                ingress:
                  - {protocol: tcp, ports: "80", source: 192.168.0.0/16}
        loadBalancers:
          - id: clb-1
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(LabAddress.nat)]
            listeners:
              - protocol: tcp
                port: 80
                backendPort: 80
                scheduler: wrr
                backends:
                  - {address: \(LabAddress.ecs2), weight: 100}   # ECS 2
                  - {address: \(LabAddress.ecs3), weight: 100}    # ECS 3
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
              - protocol: udp
                port: \(LabAddress.udpPort)
                backendPort: \(LabAddress.udpPort)
                backends:
                  - {address: \(LabAddress.udpEcho), weight: 100}
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
              # The same backends behind another port, with an HTTP health check: ECS 3 fails it.
              - protocol: tcp
                port: \(LabAddress.httpCheckedPort)
                backendPort: 80
                backends:
                  - {address: \(LabAddress.ecs2), weight: 100}
                  - {address: \(LabAddress.ecs3), weight: 100}
                healthCheck: {type: http, path: /healthz, expectStatus: 200, interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
              - protocol: tcp
                port: \(LabAddress.halfClosePort)
                backends:
                  - {address: \(LabAddress.udpEcho), weight: 100}
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
              - protocol: tcp
                port: \(LabAddress.conversationPort)
                backends:
                  - {address: \(LabAddress.udpEcho), weight: 100}
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
          # An external load balancer (HAProxy) reached at its address: no backends.
          - id: clb-ext
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(LabAddress.natExternal)]
            address: \(LabAddress.haproxy)
            listeners:
              - {protocol: tcp, port: 80, backendPort: \(LabAddress.haproxyPort)}
        endpointServices:
          - id: epsrv-frankfurt1
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-1}]
            autoAcceptConnections: false
            zoneAffinity: true
            whitelist: ["1111111111111111", "3333333333333333", "4444444444444444"]
          - id: epsrv-external
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-ext}]
            autoAcceptConnections: false
            whitelist: ["1111111111111111"]
        endpoints:
          - id: ep-consumer1
            account: account-a
            service: epsrv-frankfurt1
            vpc: vpc-1
            securityGroups: [sg-web]
            zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(LabConsumer.vpc1.eni)}]
            connection: Connected
          - id: ep-no80
            account: account-a
            service: epsrv-frankfurt1
            vpc: vpc-1
            securityGroups: [sg-no80]
            zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(LabAddress.eniNo80)}]
            connection: Connected
          - id: ep-waiting
            account: account-a
            service: epsrv-frankfurt1
            vpc: vpc-1
            securityGroups: [sg-web]
            zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(LabAddress.eniWaiting)}]
            connection: Disconnected
          - id: ep-external
            account: account-a
            service: epsrv-external
            vpc: vpc-1
            securityGroups: [sg-web]
            zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(LabAddress.eniExternal)}]
            connection: Connected
          - id: ep-consumer3
            account: account-c
            service: epsrv-frankfurt1
            vpc: vpc-3
            securityGroups: [sg-web]
            zones: [{zone: eu-central-1b, vswitch: vsw-3b}]     # allocated: 10.10.2.4, as in VPC 1
            connection: Connected
          - id: ep-consumer4
            account: account-d
            service: epsrv-frankfurt1
            vpc: vpc-4
            securityGroups: [sg-web]
            zones: [{zone: eu-central-1b, vswitch: vsw-4b}]     # allocated: 192.168.24.4
            connection: Connected
        # Splicing on (it is off by default), so that the lab's long conversations exercise it.
        gateway:
          spliceAfterExchanges: 16

        """
    }

    /// The addresses ZoneLink must add (and remove again) in each namespace: ENIs, DNS, NAT.
    static let ownedAddresses: [LabVPC: [String]] = [
        .vpc1: [LabConsumer.vpc1.eni, LabAddress.eniNo80, LabAddress.eniWaiting, LabAddress.eniExternal, LabConsumer.vpc1.dns],
        .vpc2: [LabAddress.nat, LabAddress.natExternal],
        .vpc3: [LabConsumer.vpc3.eni, LabConsumer.vpc3.dns],
        .vpc4: [LabConsumer.vpc4.eni, LabConsumer.vpc4.dns],
    ]
    /// The addresses the lab itself puts on each namespace's lo (hosts: clients and servers).
    static let hostAddresses: [LabVPC: [String]] = [
        .vpc1: [LabConsumer.vpc1.client, LabAddress.zoneAClient],
        .vpc2: [LabAddress.ecs2, LabAddress.ecs3, LabAddress.udpEcho, LabAddress.haproxy],
        .vpc3: [LabConsumer.vpc3.client],
        .vpc4: [LabConsumer.vpc4.client],
    ]
}

// MARK: - Background processes

/// A long-running process of the lab (nginx, HAProxy, echo server, a slow curl), output in files.
final class LabProcess: @unchecked Sendable {
    let process: Process
    let name: String
    let outURL: URL
    let errURL: URL

    init(name: String, executable: String, arguments: [String], dir: URL) throws {
        self.name = name
        outURL = dir.appendingPathComponent("\(name).stdout")
        errURL = dir.appendingPathComponent("\(name).stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try launchProcess(process)
    }

    var pid: pid_t { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }
    var output: String { "[\(name) stdout]\n\(cap(stdout, 2000))\n[\(name) stderr]\n\(cap(stderr, 2000))" }

    /// SIGTERM (nginx: fast shutdown; its workers follow), SIGKILL after `grace` seconds.
    func stop(grace: Double = 3) {
        guard process.isRunning else { return }
        let children = descendants(of: pid)
        Glibc.kill(pid, SIGTERM)
        if !waitForExit(process, timeout: grace) {
            Glibc.kill(pid, SIGKILL)
            _ = waitForExit(process, timeout: 5)
        }
        for child in children where isAlive(child) { Glibc.kill(child, SIGKILL) }
    }
}

// MARK: - The server under test

/// `zonelink serve --config F --state-dir D --threads 1`, run as root from the lab's directory.
final class GatewayServer: @unchecked Sendable {
    let process: LabProcess
    let configURL: URL
    let stateDir: URL

    /// `yaml`: the config to serve (the lab's `LabConfig` when nil).
    init(lab: GatewayLab, yaml: String? = nil) throws {
        let binary = try Paths.requireZonelink()
        configURL = lab.dir.appendingPathComponent("zonelink.yaml")
        try (yaml ?? LabConfig.yaml(namespaces: lab.namespaces)).write(to: configURL, atomically: true, encoding: .utf8)
        stateDir = lab.dir.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        // The control API wants a bearer token: the operator's, for `nat list`.
        try "operator \(GatewayServer.operatorTokenSHA256)\n".write(
            to: stateDir.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
        process = try LabProcess(name: "zonelink", executable: binary.path,
                                 arguments: ["serve", "--config", configURL.path, "--state-dir", stateDir.path,
                                             "--threads", "1", "--log-level", "info"],
                                 dir: lab.dir)
    }

    var isRunning: Bool { process.isRunning }
    var logs: String { "zonelink serve output (last lines):\n\(capTail(process.stderr, 6000))\n[stdout]\n\(capTail(process.stdout, 2000))" }

    static let operatorToken = "lab-operator-token"
    /// SHA-256 of `operatorToken`, as the tokens file holds it.
    static let operatorTokenSHA256 = "cd04edb41c8d68d38c4e60685c4c8992d58effaba56e9338a0cf0e4ffb7681e6"

    /// `zonelink nat list --state-dir D --token T [--json]`.
    func natList(json: Bool) throws -> ProcessResult {
        try runProcessBlocking(Paths.zonelinkBinary.path,
                               ["nat", "list", "--state-dir", stateDir.path, "--token", Self.operatorToken] + (json ? ["--json"] : []),
                               timeout: 20)
    }

    /// The recent events as the operator hears them (`zonelink events --json`); empty when the
    /// command fails.
    func events() throws -> [[String: Any]] {
        let r = try runProcessBlocking(Paths.zonelinkBinary.path,
                                       ["events", "--json", "--state-dir", stateDir.path, "--token", Self.operatorToken], timeout: 20)
        guard r.exited, r.status == 0 else { return [] }
        return r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The flows of `nat list --json`, or a description of what went wrong.
    func natFlows() throws -> Result<[NATFlow], HarnessError> {
        let r = try natList(json: true)
        guard r.exited, r.status == 0 else { return .failure(HarnessError("nat list --json failed:\n\(r.summary)")) }
        guard let data = r.stdout.data(using: .utf8),
              let array = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            return .failure(HarnessError("nat list --json did not print a JSON array of objects:\n\(r.summary)"))
        }
        return .success(array.map(NATFlow.init))
    }

    /// The value of one series of `GET /metrics` (as the operator reads it on the control
    /// socket), nil when absent or unreadable.
    func metric(_ series: String) throws -> Double? {
        guard let curl = GatewayLabRequirements.curl else { return nil }
        let r = try runProcessBlocking(curl, [
            "-s", "--max-time", "10", "--unix-socket", stateDir.appendingPathComponent("control.sock").path,
            "-H", "Authorization: Bearer \(Self.operatorToken)", "http://zonelink/metrics",
        ], timeout: 20)
        return metricValue(r.stdout, series)
    }

    /// SIGTERM; (ended within the timeout, exited normally, status).
    func terminate(timeout: Double = 5) -> (ended: Bool, exited: Bool, status: Int32) {
        let p = process.process
        guard p.isRunning else { return (true, p.terminationReason == .exit, p.terminationStatus) }
        p.terminate()
        guard waitForExit(p, timeout: timeout) else {
            Glibc.kill(p.processIdentifier, SIGKILL)
            _ = waitForExit(p, timeout: 5)
            return (false, false, -1)
        }
        return (true, p.terminationReason == .exit, p.terminationStatus)
    }
}

/// One row of `zonelink nat list --json`.
struct NATFlow: Sendable, CustomStringConvertible {
    var protocolName: String
    var vpc: String
    var client: String
    var eni: String
    var nat: String
    var target: String
    var endpoint: String
    var ageSeconds: Double?
    var bytesFromClient: Int?
    var bytesFromTarget: Int?
    var raw: String

    init(_ object: [String: Any]) {
        func str(_ k: String) -> String { (object[k] as? String) ?? (object[k].map { "\($0)" } ?? "") }
        func num(_ k: String) -> Double? { (object[k] as? NSNumber)?.doubleValue }
        protocolName = str("protocol")
        vpc = str("vpc")
        client = str("client")
        eni = str("eni")
        nat = str("nat")
        target = str("target")
        endpoint = str("endpoint")
        ageSeconds = num("ageSeconds")
        bytesFromClient = num("bytesFromClient").map { Int($0) }
        bytesFromTarget = num("bytesFromTarget").map { Int($0) }
        let keys = ["protocol", "vpc", "client", "eni", "nat", "target", "endpoint", "ageSeconds", "bytesFromClient", "bytesFromTarget"]
        let missing = keys.filter { object[$0] == nil }
        raw = object.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ") + (missing.isEmpty ? "" : " MISSING KEYS \(missing)")
    }

    var missingKeys: Bool { raw.contains("MISSING KEYS") }
    var description: String { raw }
    static func host(_ hostPort: String) -> String { String(hostPort.split(separator: ":").first ?? "") }
    static func port(_ hostPort: String) -> Int? { hostPort.split(separator: ":").last.flatMap { Int($0) } }
}

// MARK: - The lab

final class GatewayLab: @unchecked Sendable {
    let prefix: String
    let dir: URL
    let namespaces: [LabVPC: String]
    private let lock = NSLock()
    private var processes: [LabProcess] = []
    private(set) var nginx: [LabBackend: LabProcess] = [:]
    private var haproxyLogSkip = 0
    var server: GatewayServer?

    static let registry = URL(fileURLWithPath: "/run/zonelink-it")
    static var ip: String { GatewayLabRequirements.ipPath ?? "/usr/sbin/ip" }

    private init(prefix: String, dir: URL) {
        self.prefix = prefix
        self.dir = dir
        var ns: [LabVPC: String] = [:]
        for vpc in LabVPC.allCases { ns[vpc] = "\(prefix)-\(vpc.rawValue)" }
        namespaces = ns
    }

    func ns(_ vpc: LabVPC) -> String { namespaces[vpc]! }

    /// Creates the namespaces (lo up) with the hosts' addresses; nothing runs yet.
    static func create(tag: String) throws -> GatewayLab {
        sweepStale()
        let prefix = "zl" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
        let lab = GatewayLab(prefix: prefix, dir: try Paths.makeTempDir("gw-\(tag)"))
        try FileManager.default.createDirectory(at: registry, withIntermediateDirectories: true)
        try "\(getpid())\n".write(to: registry.appendingPathComponent(prefix), atomically: true, encoding: .utf8)
        do {
            for vpc in LabVPC.allCases {
                try lab.ip(["netns", "add", lab.ns(vpc)])
                try lab.ip(["-n", lab.ns(vpc), "link", "set", "lo", "up"])
                for address in LabConfig.hostAddresses[vpc] ?? [] {
                    try lab.ip(["-n", lab.ns(vpc), "addr", "add", "\(address)/32", "dev", "lo"])
                }
            }
        } catch {
            lab.tearDown()
            throw error
        }
        return lab
    }

    /// Removes labs whose test process is gone (a run that was killed before its cleanup): the
    /// processes recorded for it outside the namespaces (its zonelink serve, checked by command
    /// line), the processes inside its namespaces, the namespaces.
    static func sweepStale() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: registry.path)) ?? []
        guard !entries.isEmpty else { return }
        let existing = (try? runProcessBlocking(ip, ["netns", "list"], timeout: 10).stdout) ?? ""
        for prefix in entries {
            let file = registry.appendingPathComponent(prefix)
            let lines = ((try? String(contentsOf: file, encoding: .utf8)) ?? "").split(separator: "\n")
            if let first = lines.first, let pid = pid_t(first.trimmingCharacters(in: .whitespaces)), isAlive(pid) { continue }
            for line in lines.dropFirst() {
                // "pid <pid> <marker>": killed only while its command line still holds the marker.
                let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
                guard fields.count == 3, fields[0] == "pid", let pid = pid_t(fields[1]), isAlive(pid),
                      let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                      cmdline.contains(fields[2]) else { continue }
                Glibc.kill(pid, SIGKILL)
            }
            for line in lines.dropFirst() {
                let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
                if fields.count == 3, fields[2].contains("/zonelink-it-gw-") {
                    try? FileManager.default.removeItem(atPath: fields[2])
                }
            }
            for line in existing.split(separator: "\n") {
                let name = String(line.split(separator: " ").first ?? "")
                guard name.hasPrefix(prefix + "-") else { continue }
                killNamespacePids(name)
                _ = try? runProcessBlocking(ip, ["netns", "del", name], timeout: 10)
            }
            try? FileManager.default.removeItem(at: file)
        }
    }

    /// Records a process of this lab that runs outside its namespaces, for `sweepStale`.
    func register(_ pid: pid_t) {
        let url = Self.registry.appendingPathComponent(prefix)
        guard let h = try? FileHandle(forWritingTo: url) else { return }
        defer { try? h.close() }
        _ = try? h.seekToEnd()
        try? h.write(contentsOf: Data("pid \(pid) \(dir.path)\n".utf8))
    }

    /// Kills the processes left in one of the lab's own namespaces (started by the lab).
    static func killNamespacePids(_ name: String) {
        guard let r = try? runProcessBlocking(ip, ["netns", "pids", name], timeout: 10) else { return }
        for pid in r.stdout.split(separator: "\n").compactMap({ pid_t($0) }) where pid != getpid() {
            Glibc.kill(pid, SIGKILL)
        }
    }

    @discardableResult
    /// `ip` with a generous timeout: on a machine whose cores are busy, even `ip addr add` has
    /// been seen to take more than 10 s.
    func ip(_ args: [String], timeout: Double = 60) throws -> ProcessResult {
        let r = try runProcessBlocking(Self.ip, args, timeout: timeout)
        guard r.exited, r.status == 0 else { throw HarnessError("lab: ip command failed:\n\(r.summary)") }
        return r
    }

    /// Runs a command inside a VPC's namespace to completion.
    func exec(_ vpc: LabVPC, _ command: [String], timeout: Double = 15) throws -> ProcessResult {
        try runProcessBlocking(Self.ip, ["netns", "exec", ns(vpc)] + command, timeout: timeout)
    }

    /// Starts a long-running command inside a VPC's namespace (`ip netns exec` execs it: same pid).
    func spawn(_ vpc: LabVPC, name: String, _ command: [String]) throws -> LabProcess {
        let p = try LabProcess(name: name, executable: Self.ip, arguments: ["netns", "exec", ns(vpc)] + command, dir: dir)
        lock.withLock { processes.append(p) }
        return p
    }

    /// IPv4 addresses on a namespace's lo.
    func loAddresses(_ vpc: LabVPC) throws -> Set<String> {
        let r = try ip(["-n", ns(vpc), "-4", "-o", "addr", "show", "dev", "lo"])
        var out: Set<String> = []
        for line in r.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if let i = fields.firstIndex(of: "inet"), i + 1 < fields.count {
                out.insert(String(fields[i + 1].split(separator: "/").first ?? ""))
            }
        }
        return out
    }

    /// `ss -H -l -n -t|-u` inside a namespace.
    func listening(_ vpc: LabVPC, udp: Bool) throws -> String {
        guard let ss = GatewayLabRequirements.ss else { throw HarnessError("ss is not installed") }
        return try exec(vpc, [ss, "-H", "-l", "-n", udp ? "-u" : "-t"]).stdout
    }

    /// Waits until `probe` is true, at most `timeout` seconds; false on timeout.
    static func poll(timeout: Double, every: Double = 0.1, _ probe: () throws -> Bool) rethrows -> Bool {
        let deadline = monotonicNow() + timeout
        while true {
            if try probe() { return true }
            if monotonicNow() > deadline { return false }
            sleepSeconds(every)
        }
    }

    // MARK: Peers in VPC 2

    /// Starts the nginx of one backend (`ECS 2` / `ECS 3` on :80, /big a 64 MiB file, access log
    /// `$remote_addr:$remote_port "$request" $status $bytes_sent`) and waits until it answers.
    @discardableResult
    func startNginx(_ backend: LabBackend) throws -> LabProcess {
        guard let nginx = GatewayLabRequirements.nginx else { throw HarnessError("nginx is not installed") }
        let d = dir.appendingPathComponent(backend.rawValue)
        try FileManager.default.createDirectory(at: d.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        let big = dir.appendingPathComponent("big.bin")
        if !FileManager.default.fileExists(atPath: big.path) {
            _ = FileManager.default.createFile(atPath: big.path, contents: nil)
            let h = try FileHandle(forWritingTo: big)
            try h.truncate(atOffset: 64 << 20)
            try h.close()
        }
        let conf = """
        user root;
        daemon off;
        master_process on;
        worker_processes 1;
        pid \(d.path)/nginx.pid;
        error_log \(d.path)/error.log warn;
        events { worker_connections 1024; }
        http {
            log_format lab '$remote_addr:$remote_port "$request" $status $bytes_sent';
            access_log \(d.path)/access.log lab;
            client_body_temp_path \(d.path)/tmp/body;
            proxy_temp_path \(d.path)/tmp/proxy;
            fastcgi_temp_path \(d.path)/tmp/fastcgi;
            uwsgi_temp_path \(d.path)/tmp/uwsgi;
            scgi_temp_path \(d.path)/tmp/scgi;
            keepalive_timeout 0;
            server {
                listen \(backend.address):80;
                default_type text/plain;
                location = /big { alias \(big.path); }
                location = /healthz { return \(backend == .ecs2 ? 200 : 503) "\(backend.label) health\\n"; }
                location / { return 200 "\(backend.label)\\n"; }
            }
        }

        """
        let confURL = d.appendingPathComponent("nginx.conf")
        try conf.write(to: confURL, atomically: true, encoding: .utf8)
        let p = try spawn(.vpc2, name: "nginx-\(backend.rawValue)", [nginx, "-c", confURL.path])
        lock.withLock { self.nginx[backend] = p }
        let ok = try Self.poll(timeout: 10) {
            guard p.isRunning else { return true }
            let r = try exec(.vpc2, [GatewayLabRequirements.curl ?? "curl", "-s", "--max-time", "1", "http://\(backend.address)/"])
            return r.stdout == backend.label + "\n"
        }
        guard ok, p.isRunning else {
            throw HarnessError("lab: nginx for \(backend.label) did not answer on \(backend.address):80 in \(ns(.vpc2)):\n\(p.output)\n\((try? String(contentsOf: d.appendingPathComponent("error.log"), encoding: .utf8)) ?? "")")
        }
        // The readiness probe came from the backend's own address; start the log afresh.
        try Data().write(to: d.appendingPathComponent("access.log"))
        Glibc.kill(p.pid, SIGUSR1)  // reopen the log file
        sleepSeconds(0.1)
        return p
    }

    /// Stops one nginx (SIGTERM to the master) and waits until it has exited.
    func stopNginx(_ backend: LabBackend) {
        lock.withLock { nginx[backend] }?.stop()
    }

    /// Empties both backends' access logs (nginx reopens them on SIGUSR1).
    func clearAccessLogs() throws {
        for backend in LabBackend.allCases {
            try Data().write(to: dir.appendingPathComponent(backend.rawValue).appendingPathComponent("access.log"))
            if let n = lock.withLock({ nginx[backend] }), n.isRunning { Glibc.kill(n.pid, SIGUSR1) }
        }
        sleepSeconds(0.1)
    }

    /// The access log lines of one backend.
    func accessLog(_ backend: LabBackend) -> [String] {
        let url = dir.appendingPathComponent(backend.rawValue).appendingPathComponent("access.log")
        return ((try? String(contentsOf: url, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// What the UDP echo / half-close peer printed.
    func peerLog() -> String {
        lock.withLock { processes.first { $0.name == "udp-echo" } }?.stdout ?? ""
    }

    /// HAProxy's log lines (`client:port backend/server bytes`), one per connection, since it
    /// was ready.
    func haproxyLog() -> [String] {
        Array(haproxyLogAll().dropFirst(lock.withLock { haproxyLogSkip }))
    }

    private func haproxyLogAll() -> [String] {
        let p = lock.withLock { processes.first { $0.name == "haproxy" } }
        return (p?.stdout ?? "").split(separator: "\n").map(String.init).filter { !$0.hasPrefix("[") }
    }

    /// The UDP echo server: replies `<its address> from <peer addr:port> <payload>`. It also
    /// accepts (and closes) TCP connections on the same port, so a TCP health check sees it up,
    /// and runs the half-close peer on TCP 7000: it sends `hello from <address>`, shuts its
    /// sending side, reads until the client's FIN and prints `halfclose <peer> <bytes read>`;
    /// and the conversation peer on TCP 7001: it answers each line `ping N` with `pong N <peer>`;
    /// after a line `bulk`, it reads to the client's FIN, answers `got <bytes> <sha256>` and
    /// 2 MiB of a pattern, and closes.
    @discardableResult
    func startUDPEcho() throws -> LabProcess {
        guard let python = GatewayLabRequirements.python3 else { throw HarnessError("python3 is not installed") }
        let script = """
        import hashlib, socket, sys, threading
        addr, port, hport, cport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        def listener(p):
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((addr, p))
            t.listen(128)
            return t
        def accept_and_close(t):
            while True:
                c, _ = t.accept()
                c.close()
        def half_close_peer(c, peer):
            try:
                c.sendall(("hello from %s\\n" % addr).encode())
                c.shutdown(socket.SHUT_WR)
                c.settimeout(10)
                data = b""
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                print("halfclose %s:%d %s" % (peer[0], peer[1], data.decode(errors="replace")), flush=True)
            except Exception as e:
                print("halfclose %s:%d error %s" % (peer[0], peer[1], e), flush=True)
            finally:
                c.close()
        def each_connection(t, peer_handler):
            while True:
                c, peer = t.accept()
                threading.Thread(target=peer_handler, args=(c, peer), daemon=True).start()
        def conversation_peer(c, peer):
            try:
                c.settimeout(60)
                f = c.makefile("rb")
                while True:
                    line = f.readline()
                    if not line or line == b"bulk\\n":
                        break
                    c.sendall(b"pong " + line.split()[1] + (" %s:%d\\n" % peer).encode())
                if line == b"bulk\\n":
                    digest, total = hashlib.sha256(), 0
                    while True:
                        chunk = f.read1(65536)
                        if not chunk:
                            break
                        digest.update(chunk)
                        total += len(chunk)
                    c.sendall(("got %d %s\\n" % (total, digest.hexdigest())).encode())
                    c.sendall(bytes(range(256)) * 8192)
            except Exception as e:
                print("conversation %s:%d error %s" % (peer[0], peer[1], e), flush=True)
            finally:
                c.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((addr, port))
        threading.Thread(target=accept_and_close, args=(listener(port),), daemon=True).start()
        threading.Thread(target=each_connection, args=(listener(hport), half_close_peer), daemon=True).start()
        threading.Thread(target=each_connection, args=(listener(cport), conversation_peer), daemon=True).start()
        print("ready", flush=True)
        while True:
            data, peer = u.recvfrom(65535)
            u.sendto(("%s from %s:%d " % (addr, peer[0], peer[1])).encode() + data, peer)

        """
        let url = dir.appendingPathComponent("udp-echo.py")
        try script.write(to: url, atomically: true, encoding: .utf8)
        let p = try spawn(.vpc2, name: "udp-echo", [python, url.path, LabAddress.udpEcho, "\(LabAddress.udpPort)",
                                                    "\(LabAddress.halfClosePort)", "\(LabAddress.conversationPort)"])
        guard Self.poll(timeout: 10, { !p.isRunning || p.stdout.contains("ready") }), p.isRunning else {
            throw HarnessError("lab: the UDP echo server did not start:\n\(p.output)")
        }
        return p
    }

    /// HAProxy (mode tcp, one thread) on 192.168.24.100:8080 in front of both nginx.
    @discardableResult
    func startHAProxy() throws -> LabProcess {
        guard let haproxy = GatewayLabRequirements.haproxy else { throw HarnessError("haproxy is not installed") }
        let conf = """
        global
            nbthread 1
            maxconn 4096
            log stdout format raw local0 info
        defaults
            mode tcp
            log global
            log-format "%ci:%cp %b/%s %B"
            timeout connect 2s
            timeout client 30s
            timeout server 30s
        listen ext
            bind \(LabAddress.haproxy):\(LabAddress.haproxyPort)
            balance roundrobin
            server ecs2 \(LabAddress.ecs2):80
            server ecs3 \(LabAddress.ecs3):80

        """
        let url = dir.appendingPathComponent("haproxy.cfg")
        try conf.write(to: url, atomically: true, encoding: .utf8)
        let p = try spawn(.vpc2, name: "haproxy", [haproxy, "-db", "-f", url.path])
        let ok = try Self.poll(timeout: 10) {
            guard p.isRunning else { return true }
            let r = try exec(.vpc2, [GatewayLabRequirements.curl ?? "curl", "-s", "--max-time", "1",
                                     "http://\(LabAddress.haproxy):\(LabAddress.haproxyPort)/"])
            return r.stdout.hasPrefix("ECS ")
        }
        guard ok, p.isRunning else { throw HarnessError("lab: HAProxy did not answer:\n\(p.output)") }
        // The probe above is logged too: later checks look only at the lines after it.
        sleepSeconds(0.3)
        let logged = haproxyLogAll().count
        lock.withLock { haproxyLogSkip = logged }
        // Start the backends' logs afresh: the probe above went through HAProxy.
        try clearAccessLogs()
        return p
    }

    // MARK: Clients

    /// `dig -b CLIENT @DNS NAME A` inside the consumer's namespace.
    func dig(_ c: LabConsumer, name: String? = nil, tcp: Bool = false) throws -> (ClientAnswer?, ProcessResult) {
        guard let dig = Tools.dig else { throw HarnessError("dig is not installed") }
        let r = try exec(c.vpc, [dig, "-b", c.client, "@\(c.dns)", name ?? c.name, "A", "+norecurse", "+time=2", "+tries=2"]
                                + (tcp ? ["+tcp"] : []), timeout: 15)
        return (ClientAnswer.parse(r.stdout), r)
    }

    /// One HTTP request from a consumer's client address to `address:port` for `name`
    /// (`curl --resolve`, no keep-alive).
    func curl(_ vpc: LabVPC, from client: String, name: String, address: String, port: Int = 80,
              path: String = "/", maxTime: Double = 3, extra: [String] = []) throws -> ProcessResult {
        try exec(vpc, [GatewayLabRequirements.curl ?? "curl", "-sS", "--interface", client,
                       "--resolve", "\(name):\(port):\(address)", "--connect-timeout", "2",
                       "--max-time", String(maxTime)] + extra + ["http://\(name):\(port)\(path)"],
                 timeout: maxTime + 10)
    }

    func curl(_ c: LabConsumer, eni: String? = nil, maxTime: Double = 3) throws -> ProcessResult {
        try curl(c.vpc, from: c.client, name: c.name, address: eni ?? c.eni, maxTime: maxTime)
    }

    // MARK: Server

    /// Starts `zonelink serve` on the lab's config and waits until it is ready: every consumer's
    /// DNS answers, the Connected endpoints listen on :80 (TCP) and :5353 (UDP), and one request
    /// from VPC 1 reaches a backend (backends may start unhealthy: the contract does not say).
    func startServer(timeout: Double = 25) throws -> GatewayServer {
        let server = try GatewayServer(lab: self)
        self.server = server
        register(server.process.pid)
        let expectations: [(LabVPC, Bool, String)] = [
            (.vpc1, false, "\(LabConsumer.vpc1.eni):80"), (.vpc1, false, "\(LabAddress.eniNo80):80"),
            (.vpc1, false, "\(LabAddress.eniExternal):80"), (.vpc1, true, "\(LabConsumer.vpc1.eni):\(LabAddress.udpPort)"),
            (.vpc3, false, "\(LabConsumer.vpc3.eni):80"), (.vpc3, true, "\(LabConsumer.vpc3.eni):\(LabAddress.udpPort)"),
            (.vpc4, false, "\(LabConsumer.vpc4.eni):80"),
        ]
        var missing: [String] = []
        var dnsProblem = ""
        let ready = try Self.poll(timeout: timeout, every: 0.2) {
            guard server.isRunning else { return true }
            missing = []
            for (vpc, udp, socket) in expectations {
                if !(try listening(vpc, udp: udp)).contains(socket + " ") {
                    missing.append("\(udp ? "udp" : "tcp") \(socket) in \(vpc.id)")
                }
            }
            guard missing.isEmpty else { return false }
            for c in LabConsumer.all {
                let (answer, r) = try dig(c)
                guard let answer, answer.rcode == "NOERROR" else {
                    dnsProblem = "DNS of \(c): \(r.summary)"
                    return false
                }
            }
            dnsProblem = ""
            return try curl(.vpc1).stdout.hasPrefix("ECS ")
        }
        guard server.isRunning else {
            throw HarnessError("zonelink serve exited early (\(server.process.process.terminationReason == .exit ? "exit" : "signal") \(server.process.process.terminationStatus)).\n\(server.logs)")
        }
        guard ready else {
            var state = ""
            for vpc in LabVPC.allCases {
                state += "\(vpc.id) lo: \(((try? loAddresses(vpc)) ?? []).sorted())\n"
                state += "  tcp listening:\n\((try? listening(vpc, udp: false)) ?? "")  udp:\n\((try? listening(vpc, udp: true)) ?? "")"
            }
            let probe = (try? curl(.vpc1).summary) ?? "-"
            throw HarnessError("zonelink serve was not ready within \(Int(timeout)) s. Missing listeners: \(missing); \(dnsProblem)\nlast request from VPC 1: \(probe)\n\(state)\n\(server.logs)")
        }
        try clearAccessLogs()
        return server
    }

    func curl(_ vpc: LabVPC) throws -> ProcessResult {
        let c = LabConsumer.all.first { $0.vpc == vpc }!
        return try curl(c)
    }

    // MARK: Teardown

    /// Stops the server (if still running) and every process of the lab, deletes the namespaces.
    func tearDown() {
        if let server, server.isRunning { _ = server.terminate() }
        let all = lock.withLock { processes }
        for p in all.reversed() { p.stop(grace: 2) }
        for vpc in LabVPC.allCases {
            Self.killNamespacePids(ns(vpc))
            _ = try? runProcessBlocking(Self.ip, ["netns", "del", ns(vpc)], timeout: 10)
        }
        try? FileManager.default.removeItem(at: Self.registry.appendingPathComponent(prefix))
        if ProcessInfo.processInfo.environment["ZONELINK_KEEP_LAB"] == nil {
            try? FileManager.default.removeItem(at: dir)
        }
    }
}

/// Runs a test in a fresh lab with nginx (both backends) and the UDP echo server running (and
/// HAProxy when asked) and `zonelink serve` ready; afterwards expects the server to stop on
/// SIGTERM with exit status 0 within 5 s. The lab is torn down whatever happens.
func withGatewayLab(_ tag: String, haproxy: Bool = false,
                    _ body: (GatewayLab, GatewayServer) async throws -> Void) async throws {
    let lab = try await offload { try GatewayLab.create(tag: tag) }
    do {
        let server = try await offload { () throws -> GatewayServer in
            try lab.startNginx(.ecs2)
            try lab.startNginx(.ecs3)
            try lab.startUDPEcho()
            if haproxy { try lab.startHAProxy() }
            return try lab.startServer()
        }
        try await body(lab, server)
        let (ended, exited, status) = await offloadQuietly { server.terminate() }
        #expect(ended, "zonelink serve did not exit within 5 s of SIGTERM.\n\(server.logs)")
        if ended {
            #expect(exited && status == 0, "zonelink serve: after SIGTERM expected exit status 0, got \(exited ? "exit" : "signal") \(status).\n\(server.logs)")
        }
    } catch {
        await offloadQuietly { lab.tearDown() }
        throw error
    }
    await offloadQuietly { lab.tearDown() }
}

/// `offload` for work that cannot throw.
func offloadQuietly<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (cont: CheckedContinuation<T, Never>) in
        let thread = Thread { cont.resume(returning: body()) }
        thread.stackSize = 4 << 20
        thread.start()
    }
}
