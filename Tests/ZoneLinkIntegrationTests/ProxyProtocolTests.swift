// PROXY protocol v2 end to end (docs/gateway.md, "PROXY protocol v2"), in the gateway lab's
// namespaces with a config of its own: real parsers in the provider's VPC (nginx with
// `listen … proxy_protocol` logging `$proxy_protocol_addr`, HAProxy with `accept-proxy` logging
// the client it decoded), a Swift server in the test that reads the raw header and decodes
// its TLVs for two consumer VPCs whose clients share an address and port, and a service
// without the setting whose backend must never see a header.
//
//   VPC 1 (account A) client 10.10.2.1: ep-pp1 10.10.2.4 (epsrv-pp: :80 nginx, :9000 raw server),
//                                       ep-ppext 10.10.2.7 (epsrv-ppext: :80 HAProxy),
//                                       ep-plain 10.10.2.8 (epsrv-plain: :9001 raw server, no header)
//   VPC 3 (account C) client 10.10.2.1: ep-pp3 10.10.2.4 (epsrv-pp)
//   VPC 2 (provider B): nginx 192.168.24.200 (:80 proxy_protocol, :81 plain for HAProxy),
//                       raw server 192.168.24.12 (:9000 expects the header, :9001 plain),
//                       HAProxy 192.168.24.100:8080 accept-proxy
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Nested in the gateway suite, whose traits (root, namespaces, tools) it inherits and whose
// `.serialized` it shares: one lab at a time, so that labs never compete for `ip netns add`.
extension GatewayTests {
@Suite("PROXY protocol v2 in network namespaces")
struct ProxyProtocolTests {

    @Test("nginx (proxy_protocol) and HAProxy (accept-proxy) decode the consumer's client address and port from ZoneLink's header, with no broken header logged")
    func realParsers() async throws {
        try await withProxyLab("pp-parsers") { lab in
            // The same client address and port in VPC 1 and VPC 3, to nginx through ep-pp1 / ep-pp3.
            for (vpc, port) in [(LabVPC.vpc1, 41_001), (LabVPC.vpc3, 41_002)] {
                let r = try await offload { try lab.curlPP(vpc, eni: ProxyLab.eniPP, port: 80, localPort: port) }
                #expect(r.exited && r.status == 0 && r.stdout == "pp nginx\n", "curl from \(vpc.id) to \(ProxyLab.eniPP):80 through epsrv-pp:\n\(r.summary)")
            }
            let (seen, lines) = try await offload { () -> (Bool, [String]) in
                var lines: [String] = []
                let seen = GatewayLab.poll(timeout: 10) {
                    lines = lab.proxyNginxLog().filter { $0.contains("GET /pp") }
                    return lines.count >= 2
                }
                return (seen, lines)
            }
            #expect(seen, "nginx logged \(lines.count) requests, expected 2:\n\(lines)")
            // `$proxy_protocol_addr:$proxy_protocol_port $remote_addr "$request" $status`
            let decoded = Set(lines.map { String($0.split(separator: " ").first ?? "") })
            #expect(decoded == ["10.10.2.1:41001", "10.10.2.1:41002"],
                    "nginx's \\$proxy_protocol_addr:port should be the consumers' client address and port, got \(lines)")
            #expect(lines.allSatisfy { $0.split(separator: " ").dropFirst().first == Substring(LabAddress.nat) },
                    "nginx's \\$remote_addr should be the NAT address \(LabAddress.nat): \(lines)")

            // HAProxy at the external load balancer's address: %ci:%cp as decoded from the header.
            let r = try await offload { try lab.curlPP(.vpc1, eni: ProxyLab.eniExternal, port: 80, localPort: 41_003) }
            #expect(r.exited && r.status == 0 && r.stdout == "plain nginx\n", "curl through ep-ppext -> HAProxy (accept-proxy):\n\(r.summary)")
            let (logged, haproxyLines) = try await offload { () -> (Bool, [String]) in
                var found: [String] = []
                let ok = GatewayLab.poll(timeout: 10) {
                    found = lab.proxyHAProxyLog()
                    return found.contains { $0.hasPrefix("10.10.2.1:41003 \(ProxyLab.eniExternal):80 ") }
                }
                return (ok, found)
            }
            #expect(logged, "HAProxy should log the client and ENI it decoded (%ci:%cp %fi:%fp), 10.10.2.1:41003 \(ProxyLab.eniExternal):80; its log:\n\(haproxyLines.joined(separator: "\n"))")

            // Health checks sent LOCAL headers all along: nginx never saw a broken one.
            let errors = lab.proxyNginxErrors()
            #expect(!errors.contains("broken header") && !errors.contains("PROXY protocol"),
                    "nginx's error log mentions the PROXY protocol:\n\(errors)")
        }
    }

    @Test("The raw header, decoded by the test: client and ENI addresses, endpoint, VPC, account and zone for two VPCs with the same client; LOCAL health checks; no header for a service without the setting")
    func rawHeader() async throws {
        try await withProxyLab("pp-raw") { lab in
            let raw = lab.raw!
            raw.clear()
            for (vpc, port) in [(LabVPC.vpc1, 42_001), (LabVPC.vpc3, 42_001)] {
                let r = try await offload { try lab.curlPP(vpc, eni: ProxyLab.eniPP, port: 9000, localPort: port) }
                #expect(r.exited && r.status == 0 && r.stdout == "raw ok\n", "curl from \(vpc.id) to \(ProxyLab.eniPP):9000:\n\(r.summary)")
            }
            let (complete, connections) = try await offload { () -> (Bool, [RawHeaderServer.Connection]) in
                var connections: [RawHeaderServer.Connection] = []
                let ok = GatewayLab.poll(timeout: 10) {
                    connections = raw.connections(port: 9000).filter { $0.bytes.count > 16 }
                    return connections.count >= 2
                }
                return (ok, connections)
            }
            #expect(complete, "the raw server saw \(connections.count) client connections on :9000, expected 2")
            var headers: [String: ProxyV2Header] = [:]
            for connection in connections {
                guard case .header(let header) = ProxyV2Decoder.decode(connection.bytes) else {
                    Issue.record("connection from \(connection.peer) does not start with a PROXY v2 header: \(ProxyV2Decoder.decode(connection.bytes)); first bytes \(connection.bytes.prefix(40))")
                    continue
                }
                #expect(connection.peer.hasPrefix(LabAddress.nat + ":"), "the connection itself comes from the NAT address: \(connection.peer)")
                #expect(String(decoding: connection.bytes[header.length...].prefix(8), as: UTF8.self).hasPrefix("GET /pp"),
                        "the client's request follows the header at once: \(connection.bytes[header.length...].prefix(40)); all on :9000: \(raw.connections(port: 9000).map { "\($0.peer) \($0.bytes.count) bytes \($0.bytes.prefix(100))" })")
                headers[header.endpointID ?? "?"] = header
            }
            let expected: [(endpoint: String, vpc: String, account: String)] = [
                ("ep-pp1", "vpc-1", "1111111111111111"), ("ep-pp3", "vpc-3", "3333333333333333"),
            ]
            for e in expected {
                guard let h = headers[e.endpoint] else {
                    Issue.record("no header with endpoint \(e.endpoint); got \(headers.values.map(\.description))")
                    continue
                }
                #expect(h.command == .proxy && h.family == 0x11, "\(e.endpoint): command PROXY, TCP over IPv4: \(h)")
                #expect(h.source == "10.10.2.1:42001", "\(e.endpoint): source = the client: \(h)")
                #expect(h.destination == "\(ProxyLab.eniPP):9000", "\(e.endpoint): destination = the ENI: \(h)")
                #expect(h.endpointID == e.endpoint, "\(h)")
                #expect(h.consumerVPC == e.vpc, "\(e.endpoint): VPC TLV: \(h)")
                #expect(h.consumerAccount == e.account, "\(e.endpoint): account TLV: \(h)")
                #expect(h.zone == "eu-central-1b", "\(e.endpoint): zone TLV: \(h)")
            }

            // The TCP health checks of epsrv-pp's load balancer: LOCAL headers, then the end.
            let (checked, probes) = try await offload { () -> (Bool, [RawHeaderServer.Connection]) in
                var probes: [RawHeaderServer.Connection] = []
                let ok = GatewayLab.poll(timeout: 10) {
                    // Clients send a request after their header; a check sends 16 bytes at most.
                    probes = raw.connections(port: 9000).filter { $0.bytes.count <= 16 }
                    return !probes.isEmpty
                }
                return (ok, probes)
            }
            #expect(checked, "no health check reached the raw server on :9000 within 10 s")
            let local = ProxyV2Decoder.signature + [0x20, 0x00, 0x00, 0x00]
            #expect(probes.allSatisfy { $0.bytes == local }, "every health check should send exactly a LOCAL header: \(probes.prefix(3).map { "\($0.peer) \($0.bytes)" })")

            // The service without the setting: its backend sees the client's bytes first, never a header.
            let r = try await offload { try lab.curlPP(.vpc1, eni: ProxyLab.eniPlain, port: 9001, localPort: 42_003) }
            #expect(r.exited && r.status == 0 && r.stdout == "raw ok\n", "curl to ep-plain :9001:\n\(r.summary)")
            let plain = try await offload { () -> [RawHeaderServer.Connection] in
                var plain: [RawHeaderServer.Connection] = []
                _ = GatewayLab.poll(timeout: 10) {
                    plain = raw.connections(port: 9001)
                    return plain.contains { !$0.bytes.isEmpty }
                }
                return plain
            }
            let requests = plain.filter { !$0.bytes.isEmpty }
            #expect(requests.count == 1 && requests.allSatisfy { String(decoding: $0.bytes.prefix(4), as: UTF8.self) == "GET " },
                    "ep-plain's backend should read the client's request as its first bytes: \(requests.map { $0.bytes.prefix(40) })")
            #expect(plain.allSatisfy { !$0.bytes.starts(with: ProxyV2Decoder.signature.prefix(12)) },
                    "no connection to a backend of a service without proxyProtocol may carry a header (health checks included)")
        }
    }
}
}

// MARK: - The lab

enum ProxyLab {
    static let eniPP = "10.10.2.4"
    static let eniExternal = "10.10.2.7"
    static let eniPlain = "10.10.2.8"
    static let nginx = LabAddress.ecs2
    static let raw = LabAddress.ecs3
    static let natPlain = "192.168.24.242"

    static func yaml(namespaces ns: [LabVPC: String]) -> String {
        """
        # PROXY v2 test lab (Tests/ZoneLinkIntegrationTests/ProxyProtocolTests.swift)
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
          - id: vpc-3
            account: account-c
            cidr: 10.10.0.0/16
            netns: \(ns[.vpc3]!)
            vswitches:
              - {id: vsw-3b, zone: eu-central-1b, cidr: 10.10.2.0/24}
            securityGroups:
              - id: sg-all
                ingress: [{protocol: tcp, ports: "1-65535", source: 10.10.0.0/16}]
        loadBalancers:
          - id: clb-pp
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(LabAddress.nat)]
            listeners:
              - protocol: tcp
                port: 80
                backends: [{address: \(nginx)}]
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
              - protocol: tcp
                port: 9000
                backends: [{address: \(raw)}]
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
          - id: clb-ppext
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(LabAddress.natExternal)]
            address: \(LabAddress.haproxy)
            listeners:
              - {protocol: tcp, port: 80, backendPort: \(LabAddress.haproxyPort)}
          - id: clb-plain
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [\(natPlain)]
            listeners:
              - protocol: tcp
                port: 9001
                backends: [{address: \(raw)}]
                healthCheck: {interval: 1s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
        endpointServices:
          - id: epsrv-pp
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-pp}]
            whitelist: ["1111111111111111", "3333333333333333"]
            proxyProtocol: v2
          - id: epsrv-ppext
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-ppext}]
            whitelist: ["1111111111111111"]
            proxyProtocol: v2
          - id: epsrv-plain
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-plain}]
            whitelist: ["1111111111111111"]
            proxyProtocol: "off"
        endpoints:
          - {id: ep-pp1, account: account-a, service: epsrv-pp, vpc: vpc-1, securityGroups: [sg-all],
             zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(eniPP)}], connection: Connected}
          - {id: ep-ppext, account: account-a, service: epsrv-ppext, vpc: vpc-1, securityGroups: [sg-all],
             zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(eniExternal)}], connection: Connected}
          - {id: ep-plain, account: account-a, service: epsrv-plain, vpc: vpc-1, securityGroups: [sg-all],
             zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: \(eniPlain)}], connection: Connected}
          - {id: ep-pp3, account: account-c, service: epsrv-pp, vpc: vpc-3, securityGroups: [sg-all],
             zones: [{zone: eu-central-1b, vswitch: vsw-3b, address: \(eniPP)}], connection: Connected}

        """
    }
}

/// Runs a test in a fresh lab with the PROXY v2 peers and `zonelink serve` on `ProxyLab`'s
/// config ready; afterwards expects a clean stop on SIGTERM. The lab is torn down whatever happens.
func withProxyLab(_ tag: String, _ body: (GatewayLab) async throws -> Void) async throws {
    let lab = try await offload { try GatewayLab.create(tag: tag) }
    do {
        let server = try await offload { () throws -> GatewayServer in
            try lab.startProxyPeers()
            return try lab.startProxyServer()
        }
        try await body(lab)
        let (ended, exited, status) = await offloadQuietly { server.terminate() }
        #expect(ended && exited && status == 0, "zonelink serve did not stop cleanly on SIGTERM (\(exited ? "exit" : "signal") \(status)).\n\(server.logs)")
    } catch {
        lab.raw?.stop()
        await offloadQuietly { lab.tearDown() }
        throw error
    }
    lab.raw?.stop()
    await offloadQuietly { lab.tearDown() }
}

extension GatewayLab {
    private static let rawServers = NSLock()
    nonisolated(unsafe) private static var rawByPrefix: [String: RawHeaderServer] = [:]

    /// The lab's raw header server, once `startProxyPeers` ran.
    var raw: RawHeaderServer? { Self.rawServers.withLock { Self.rawByPrefix[prefix] } }

    var proxyDir: URL { dir.appendingPathComponent("pp") }

    /// nginx (:80 with proxy_protocol, :81 plain), HAProxy (accept-proxy) in front of :81, and
    /// the raw header server (:9000, :9001), all in VPC 2; returns once each answers.
    func startProxyPeers() throws {
        guard let nginx = GatewayLabRequirements.nginx, let haproxy = GatewayLabRequirements.haproxy else {
            throw HarnessError("nginx and haproxy are needed")
        }
        let d = proxyDir
        try FileManager.default.createDirectory(at: d.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        let nginxConf = """
        user root;
        daemon off;
        master_process on;
        worker_processes 1;
        pid \(d.path)/nginx.pid;
        error_log \(d.path)/error.log info;
        events { worker_connections 1024; }
        http {
            log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr "$request" $status';
            client_body_temp_path \(d.path)/tmp/body;
            proxy_temp_path \(d.path)/tmp/proxy;
            fastcgi_temp_path \(d.path)/tmp/fastcgi;
            uwsgi_temp_path \(d.path)/tmp/uwsgi;
            scgi_temp_path \(d.path)/tmp/scgi;
            keepalive_timeout 0;
            server {
                listen \(ProxyLab.nginx):80 proxy_protocol;
                access_log \(d.path)/access-pp.log pp;
                default_type text/plain;
                location / { return 200 "pp nginx\\n"; }
            }
            server {
                listen \(ProxyLab.nginx):81;
                access_log \(d.path)/access-plain.log;
                default_type text/plain;
                location / { return 200 "plain nginx\\n"; }
            }
        }

        """
        try nginxConf.write(to: d.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        let n = try spawn(.vpc2, name: "nginx-pp", [nginx, "-c", d.appendingPathComponent("nginx.conf").path])
        let haproxyConf = """
        global
            nbthread 1
            log stdout format raw local0 info
        defaults
            mode tcp
            log global
            log-format "%ci:%cp %fi:%fp %b/%s %B"
            timeout connect 2s
            timeout client 30s
            timeout server 30s
        listen ext
            bind \(LabAddress.haproxy):\(LabAddress.haproxyPort) accept-proxy
            server plain \(ProxyLab.nginx):81

        """
        try haproxyConf.write(to: d.appendingPathComponent("haproxy.cfg"), atomically: true, encoding: .utf8)
        let h = try spawn(.vpc2, name: "haproxy-pp", [haproxy, "-db", "-f", d.appendingPathComponent("haproxy.cfg").path])
        let server = try RawHeaderServer(netns: ns(.vpc2), address: ProxyLab.raw, ports: [9000, 9001])
        Self.rawServers.withLock { Self.rawByPrefix[prefix] = server }
        let curl = GatewayLabRequirements.curl ?? "curl"
        let up = try Self.poll(timeout: 15, every: 0.2) {
            guard n.isRunning, h.isRunning else { return true }
            return try exec(.vpc2, [curl, "-s", "--max-time", "1", "http://\(ProxyLab.nginx):81/"]).stdout == "plain nginx\n"
                && (try listening(.vpc2, udp: false)).contains("\(LabAddress.haproxy):\(LabAddress.haproxyPort) ")
        }
        guard up, n.isRunning, h.isRunning else {
            throw HarnessError("lab: the PROXY v2 peers did not start:\n\(n.output)\n\(h.output)\n\(proxyNginxErrors())")
        }
    }

    /// `zonelink serve` on `ProxyLab`'s config, once every ENI port listens and a request
    /// through ep-pp1 reaches nginx.
    func startProxyServer(timeout: Double = 30) throws -> GatewayServer {
        let server = try GatewayServer(lab: self, yaml: ProxyLab.yaml(namespaces: namespaces))
        self.server = server
        register(server.process.pid)
        let expectations: [(LabVPC, String)] = [
            (.vpc1, "\(ProxyLab.eniPP):80"), (.vpc1, "\(ProxyLab.eniPP):9000"), (.vpc1, "\(ProxyLab.eniExternal):80"),
            (.vpc1, "\(ProxyLab.eniPlain):9001"), (.vpc3, "\(ProxyLab.eniPP):80"), (.vpc3, "\(ProxyLab.eniPP):9000"),
        ]
        var missing: [String] = []
        let ready = try Self.poll(timeout: timeout, every: 0.2) {
            guard server.isRunning else { return true }
            missing = try expectations.filter { !(try listening($0.0, udp: false)).contains($0.1 + " ") }.map { "\($0.1) in \($0.0.id)" }
            return missing.isEmpty
        }
        guard server.isRunning, ready else {
            throw HarnessError("zonelink serve (PROXY v2 lab) was not ready within \(Int(timeout)) s; missing listeners \(missing)\n\(server.logs)")
        }
        return server
    }

    /// `curl http://ENI:PORT/pp` from VPC `vpc`'s client 10.10.2.1, from a fixed local port.
    func curlPP(_ vpc: LabVPC, eni: String, port: Int, localPort: Int) throws -> ProcessResult {
        try exec(vpc, [GatewayLabRequirements.curl ?? "curl", "-sS", "--interface", "10.10.2.1", "--local-port", "\(localPort)",
                       "--connect-timeout", "3", "--max-time", "5", "http://\(eni):\(port)/pp"], timeout: 20)
    }

    func proxyNginxLog() -> [String] {
        ((try? String(contentsOf: proxyDir.appendingPathComponent("access-pp.log"), encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    func proxyNginxErrors() -> String {
        (try? String(contentsOf: proxyDir.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
    }

    func proxyHAProxyLog() -> [String] {
        let url = dir.appendingPathComponent("haproxy-pp.stdout")
        return ((try? String(contentsOf: url, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).filter { !$0.hasPrefix("[") }
    }
}

// MARK: - The raw header server

/// A TCP server in a network namespace, in the test process: a thread enters the namespace
/// (`setns` on that thread only), opens the listeners, and serves each connection on a thread
/// of its own. It reads until an HTTP request's blank line (after the PROXY header, if any) or
/// the end (5 s at most), answers
/// `raw ok` to a request, and keeps every connection's peer and raw bytes for the test.
final class RawHeaderServer: @unchecked Sendable {
    struct Connection: Sendable {
        var port: UInt16
        var peer: String
        var bytes: [UInt8]
    }

    // @unchecked: `lock` guards `_connections`; `fds` is set once in init.
    private let lock = NSLock()
    private var _connections: [Connection] = []
    private var fds: [Int32] = []

    init(netns: String, address: String, ports: [UInt16]) throws {
        let opened = Thread.runInNamespace(netns) { () -> Result<[Int32], HarnessError> in
            var fds: [Int32] = []
            for port in ports {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = port.bigEndian
                inet_pton(AF_INET, address, &sin.sin_addr)
                let bound = withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard bound == 0, listen(fd, 64) == 0 else {
                    let why = String(cString: strerror(errno))
                    close(fd)
                    fds.forEach { close($0) }
                    return .failure(HarnessError("raw server: cannot listen on \(address):\(port) in \(netns): \(why)"))
                }
                fds.append(fd)
            }
            return .success(fds)
        }
        fds = try opened.get()
        for (fd, port) in zip(fds, ports) {
            Thread.detachNewThread { [self] in accept(fd, port: port) }
        }
    }

    func connections(port: UInt16) -> [Connection] { lock.withLock { _connections.filter { $0.port == port } } }

    func clear() { lock.withLock { _connections = [] } }

    func stop() {
        for fd in fds {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
    }

    private func accept(_ fd: Int32, port: UInt16) {
        while true {
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let connection = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &length) }
            }
            guard connection >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &peer.sin_addr, &text, socklen_t(INET_ADDRSTRLEN))
            let name = "\(String(cString: text)):\(UInt16(bigEndian: peer.sin_port))"
            Thread.detachNewThread { [self] in serve(connection, port: port, peer: name) }
        }
    }

    private func serve(_ fd: Int32, port: UInt16, peer: String) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let blank: [UInt8] = Array("\r\n\r\n".utf8)
        while bytes.count < 65_536 {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                bytes += chunk[..<count]
                // The request's blank line, after the PROXY header if there is one (whose
                // signature starts with CR LF CR LF too).
                let start: Int
                switch ProxyV2Decoder.decode(bytes) {
                case .header(let header): start = header.length
                case .incomplete: continue
                case .invalid: start = 0
                }
                if bytes.count >= start + 4, (start..<(bytes.count - 3)).contains(where: { bytes[$0..<($0 + 4)].elementsEqual(blank) }) {
                    let answer = Array("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nraw ok\n".utf8)
                    _ = answer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    break
                }
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(fd)
        lock.withLock { _connections.append(Connection(port: port, peer: peer, bytes: bytes)) }
    }
}

extension Thread {
    /// Runs `body` on a new thread that entered the network namespace `/var/run/netns/NAME`
    /// (`setns` changes only the calling thread's namespace; sockets it makes stay in it).
    /// `setns` is looked up at run time: Swift's Glibc module does not declare it.
    static func runInNamespace<T: Sendable>(
        _ name: String, _ body: @escaping @Sendable () -> Result<T, HarnessError>
    ) -> Result<T, HarnessError> {
        typealias SetNS = @convention(c) (Int32, Int32) -> Int32
        let done = DispatchSemaphore(value: 0)
        let outcome = NamespaceOutcome<T>()
        let thread = Thread {
            defer { done.signal() }
            guard let symbol = dlsym(nil, "setns") else {
                outcome.result = .failure(HarnessError("setns not found"))
                return
            }
            let setns = unsafeBitCast(symbol, to: SetNS.self)
            let fd = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                outcome.result = .failure(HarnessError("cannot open /var/run/netns/\(name): \(String(cString: strerror(errno)))"))
                return
            }
            defer { close(fd) }
            guard setns(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                outcome.result = .failure(HarnessError("setns into \(name): \(String(cString: strerror(errno)))"))
                return
            }
            outcome.result = body()
        }
        thread.start()
        done.wait()
        return outcome.result
    }
}

/// What a namespace thread produced: written by the thread before it signals, read after.
private final class NamespaceOutcome<T: Sendable>: @unchecked Sendable {
    var result: Result<T, HarnessError> = .failure(HarnessError("namespace thread did not run"))
}
