// SNAT attribution: `zonelink nat history` names the consumer that held a NAT port at a time,
// from the attribution log in the state directory.
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Opens `count` HTTP/1.0 flows one after another from `client` to `eni`:80, each asking for
/// `/attr/TAG/N`, and prints `N TIME` per flow: the wall clock (ns) when the answer's first
/// bytes arrived, a moment the gateway's flow surely held its NAT port.
let attributionClient = """
    import socket, sys, time
    eni, client, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    for n in range(count):
        s = socket.socket()
        s.bind((client, 0))
        s.settimeout(10)
        s.connect((eni, 80))
        s.sendall(("GET /attr/%s/%d HTTP/1.0\\r\\nHost: lab\\r\\n\\r\\n" % (tag, n)).encode())
        first = s.recv(4096)
        at = time.time_ns()
        while s.recv(4096):
            pass
        s.close()
        if first:
            print(n, at, flush=True)
    """

@Suite("SNAT attribution", .serialized)
struct AttributionIntegrationTests {
    @Test("1,000 flows from two overlapping VPCs: nat history names the consumer of 50 random (NAT port, time) pairs",
          .enabled(if: GatewayLabRequirements.isRoot, "needs root (network namespaces, addresses, setns)"),
          .enabled(if: GatewayLabRequirements.netnsWorks, "needs network namespaces"),
          .enabled(if: GatewayLabRequirements.toolsPresent, "needs the lab's tools: \(GatewayLabRequirements.missingTools)"),
          .enabled(if: GatewayLabRequirements.python3 != nil, "needs python3"))
    func natHistoryNamesTheConsumer() async throws {
        try await withGatewayLab("attribution") { lab, server in
            let script = lab.dir.appendingPathComponent("attribution-client.py")
            try attributionClient.write(to: script, atomically: true, encoding: .utf8)
            let consumers = [LabConsumer.vpc1, LabConsumer.vpc3]
            let clients = try consumers.map { c in
                try lab.spawn(c.vpc, name: "attr-\(c.vpc.rawValue)", [GatewayLabRequirements.python3!, script.path, c.eni, c.client, c.vpc.id, "500"])
            }
            let done = try await offload { try GatewayLab.poll(timeout: 240, every: 0.5) { clients.allSatisfy { !$0.isRunning } } }
            try #require(done, "the clients did not finish 500 flows each within 240 s:\n\(clients.map(\.output).joined(separator: "\n"))")
            // When each flow got its answer, by path.
            var answered: [String: Int64] = [:]
            for (c, client) in zip(consumers, clients) {
                for line in client.stdout.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2, let at = Int64(parts[1]) { answered["/attr/\(c.vpc.id)/\(parts[0])"] = at }
                }
            }
            #expect(answered.count == 1_000, "flows answered: \(answered.count)\n\(clients.map(\.output).joined(separator: "\n"))")
            // Which NAT port each path came from, as the backends saw it.
            var natPort: [String: String] = [:]
            for backend in LabBackend.allCases {
                for line in lab.accessLog(backend) {
                    let parts = line.split(separator: " ")
                    if parts.count >= 3, parts[2].hasPrefix("/attr/") { natPort[String(parts[2])] = String(parts[0]) }
                }
            }
            // The writer appends every 250 ms: wait until the last flows' closes are in.
            let log = server.stateDir.appendingPathComponent("attribution.log")
            let flushed = try await offload {
                try GatewayLab.poll(timeout: 10) {
                    let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                    return text.components(separatedBy: "\"event\":\"close\"").count - 1 >= 1_000
                }
            }
            #expect(flushed, "the attribution log does not hold 1,000 closes within 10 s")

            var random = SplitMix64(seed: 50)
            let paths = answered.keys.sorted().filter { natPort[$0] != nil }
            try #require(paths.count >= 50, "only \(paths.count) flows were seen by the backends")
            for _ in 0..<50 {
                let path = paths.randomElement(using: &random)!
                let vpc = String(path.split(separator: "/")[1])
                let at = answered[path]!
                let time = rfc3339(at)
                let r = try await runProcess(Paths.zonelinkBinary.path, [
                    "nat", "history", "--state-dir", server.stateDir.path, "--nat", natPort[path]!, "--at", time, "--json",
                ], timeout: 30)
                let rows = r.stdout.split(separator: "\n").compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }
                let open = rows.first?["open"] as? [String: Any]
                #expect(r.exited && r.status == 0 && rows.count == 1, "nat history --nat \(natPort[path]!) --at \(time): \(r.summary)")
                #expect(open?["vpc"] as? String == vpc, "\(path) at \(time): \(r.stdout)")
                #expect(open?["endpoint"] as? String == (vpc == "vpc-1" ? "ep-consumer1" : "ep-consumer3"), "\(path): \(r.stdout)")
                #expect(open?["account"] as? String == (vpc == "vpc-1" ? "1111111111111111" : "3333333333333333"), "\(path): \(r.stdout)")
                #expect((open?["client"] as? String)?.hasPrefix("10.10.2.1:") == true, "\(path): \(r.stdout)")
            }
            // The table form, and the filters.
            let some = paths[0]
            let table = try await runProcess(Paths.zonelinkBinary.path, [
                "nat", "history", "--state-dir", server.stateDir.path, "--nat", LabAddress.nat, "--vpc", "vpc-3",
                "--since", rfc3339(answered[some]! - 3_600_000_000_000),
            ], timeout: 30)
            #expect(table.exited && table.status == 0 && table.stdout.contains("ep-consumer3") && !table.stdout.contains("ep-consumer1"),
                    "\(table.summary)")
            let bad = try await runProcess(Paths.zonelinkBinary.path, [
                "nat", "history", "--state-dir", server.stateDir.path, "--nat", LabAddress.nat, "--at", "14:02",
            ], timeout: 30)
            #expect(bad.exited && bad.status != 0 && bad.stderr.contains("RFC 3339"), "\(bad.summary)")
        }
    }

    @Test("A killed server loses at most the last second of the attribution log")
    func aKillLosesAtMostTheLastSecond() async throws {
        let server = try ControlAPIServer(tag: "attribution-kill")
        let backends = try BackendListeners(addresses: TestConfig.backendAddresses, port: server.config.backendPort)
        defer {
            backends.stop()
            server.cleanUp()
        }
        try await offload { try server.start() }
        let eni = "127.10.2.50"  // ep-consumer1's ENI in zone b (zones/local.yaml)
        // Flows until the kill: each one connects, and the gateway connects on to a backend.
        let (finished, killedAt) = try await offload { () throws -> (Int, Int64) in
            let deadline = monotonicNow() + 60
            var finished: [(Int64)] = []
            // Wait for the backends to be healthy enough to be picked: a first flow that is
            // relayed (the listener accepts and closes).
            while monotonicNow() < deadline && finished.count < 200 {
                if (try? oneFlow(from: "127.10.2.10", to: eni, port: server.config.eniPort)) == true {
                    finished.append(wallNanoseconds())
                }
            }
            // The log is written every 250 ms; the relay sees each close a moment after the client
            // does, later on a busy machine: 3 s is "more than the last second" with room to spare.
            sleepSeconds(3)
            let killedAt = wallNanoseconds()
            server.kill()
            return (finished.count, killedAt)
        }
        try #require(finished >= 50, "only \(finished) flows got through before the kill.\n\(server.logs)")
        let text = try String(contentsOf: server.stateDir.appendingPathComponent("attribution.log"), encoding: .utf8)
        let closes = text.split(separator: "\n").filter { $0.contains("\"event\":\"close\"") && $0.contains("127.10.2.10:") }
        // Every flow ended seconds before the kill is in the log.
        #expect(closes.count >= finished, "\(closes.count) closes logged for \(finished) flows ended ≥ 3 s before the kill at \(killedAt)")
        // A torn last line (if any) does not stop `nat history` from reading the rest.
        let r = try await runProcess(Paths.zonelinkBinary.path, [
            "nat", "history", "--state-dir", server.stateDir.path, "--nat", "127.168.24.240", "--json",
        ], timeout: 30)
        #expect(r.exited && r.status == 0 && r.stdout.split(separator: "\n").count >= finished, "\(r.summary)")
    }

    @Test("gateway.attribution.enabled: false keeps no log: flows pass, nothing is written, nat history says there is no log")
    func attributionOff() async throws {
        let server = try ControlAPIServer(tag: "attribution-off") { "gateway: {attribution: {enabled: false}}\n" + $0 }
        let backends = try BackendListeners(addresses: TestConfig.backendAddresses, port: server.config.backendPort)
        defer {
            backends.stop()
            server.cleanUp()
        }
        try await offload { try server.start() }
        let passed = try await offload { () -> Bool in
            let deadline = monotonicNow() + 60
            var passed = 0
            while monotonicNow() < deadline && passed < 5 {
                if (try? oneFlow(from: "127.10.2.10", to: "127.10.2.50", port: server.config.eniPort)) == true { passed += 1 }
            }
            return passed == 5
        }
        #expect(passed, "flows did not pass with the attribution log off.\n\(server.logs)")
        #expect(server.logs.contains("attribution log off"), "\(server.logs)")
        #expect(try await offload { server.stop() })
        let files = try FileManager.default.contentsOfDirectory(atPath: server.stateDir.path).filter { $0.hasPrefix("attribution.log") }
        #expect(files.isEmpty, "attribution files written with the log off: \(files)")
        let r = try await runProcess(Paths.zonelinkBinary.path, [
            "nat", "history", "--state-dir", server.stateDir.path, "--nat", "127.168.24.240",
        ], timeout: 30)
        #expect(r.exited && r.status != 0 && r.stderr.contains("no attribution log"), "\(r.summary)")
    }
}

/// RFC 3339 of nanoseconds since the epoch, UTC with microseconds (as `date` would print it).
func rfc3339(_ nanoseconds: Int64) -> String {
    var seconds = time_t(nanoseconds / 1_000_000_000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
    let micros = (nanoseconds % 1_000_000_000) / 1_000
    return String(cString: buffer) + "." + String(format: "%06lld", micros) + "Z"
}

func wallNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// One TCP flow through the gateway: connect from `source`, wait until the relayed backend
/// (which accepts and closes) ends it. True when the gateway accepted and then closed it.
func oneFlow(from source: String, to address: String, port: UInt16) throws -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
    defer { close(fd) }
    let local = sockaddr_in(port: 0, host: source)
    guard withSocketAddress(local, { bind(fd, $0, $1) }) == 0 else { throw HarnessError("bind \(source): \(errno)") }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let remote = sockaddr_in(port: port, host: address)
    guard withSocketAddress(remote, { connect(fd, $0, $1) }) == 0 else { return false }
    var byte: UInt8 = 0
    // The backend closes at once: the gateway relays the end (0), or resets when it could not connect.
    return recv(fd, &byte, 1, 0) == 0
}
