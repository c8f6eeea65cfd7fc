import Foundation
import ZoneLinkTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// docs/cli.md (SIGHUP) and issue 5: a reload that keeps an endpoint keeps its open flows.
@Suite("Reload keeps established flows")
struct ReloadFlowTests {
    /// A backend that answers any request with 20 bytes, 2 at a time, over 2 seconds.
    static let slowBackend = """
    import socket, sys, threading, time
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
    def serve(c):
        try:
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 20\\r\\n\\r\\n")
            for i in range(10):
                c.sendall(b"%02d" % i); time.sleep(0.2)
        except OSError:
            pass
        c.close()
    while True:
        c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
    """

    /// True when something accepts TCP connections at `host:port`.
    static func accepts(_ host: String, _ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in(port: port, host: host)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    @Test("A transfer through an ENI survives two SIGHUP reloads that change other listeners",
          .enabled(if: Tools.python3 != nil && Tools.curl != nil, "needs python3 and curl"))
    func transferSurvivesReload() async throws {
        let backendPort = try LoopbackPorts.free()
        let dir = try Paths.makeTempDir("reload-flow")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("slow.py")
        try Self.slowBackend.write(to: script, atomically: true, encoding: .utf8)
        var backends: [Process] = []
        for address in ["127.168.24.200", "127.168.24.12"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Tools.python3!)
            p.arguments = [script.path, address, "\(backendPort)"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try launchProcess(p)
            backends.append(p)
        }
        defer { for p in backends { p.terminate() } }
        // Python takes a moment to listen, longer on a busy machine.
        let listening = try await offload { () -> Bool in
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                let up = ["127.168.24.200", "127.168.24.12"].allSatisfy { Self.accepts($0, backendPort) }
                if up { return true }
                usleep(50_000)
            }
            return false
        }
        try #require(listening, "the stand-in backends did not start listening on port \(backendPort)")

        try await withZoneLink(tag: "reload-flow", mutate: {
            // The slow backends instead of the harness's stand-ins.
            $0.replacing(/backendPort: \d+/, with: "backendPort: \(backendPort)")
        }) { server in
            let yaml = server.config.yaml
            let eniPort = try #require(yaml.firstMatch(of: /port: (\d+)\n +backendPort/).map { String($0.1) })
            // DNS answering (what `withZoneLink` waits for) can come before the ENI is bound.
            let eniUp = try await offload { () -> Bool in
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline {
                    if Self.accepts("127.10.2.50", UInt16(eniPort)!) { return true }
                    usleep(50_000)
                }
                return false
            }
            try #require(eniUp, "the ENI 127.10.2.50:\(eniPort) never accepted a connection:\n\(server.logs)")
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: Tools.curl!)
            curl.arguments = ["-s", "-m", "10", "--interface", "127.10.2.1", "http://127.10.2.50:\(eniPort)/"]
            let output = Pipe()
            curl.standardOutput = output
            try launchProcess(curl)
            try await Task.sleep(for: .milliseconds(500))
            // Change something else (a DNS listener's port), reload, and reload again unchanged.
            let moved = try LoopbackPorts.free()
            try yaml.replacingOccurrences(of: "127.0.0.1:\(server.sourcePort)", with: "127.0.0.1:\(moved)")
                .write(to: server.configURL, atomically: true, encoding: .utf8)
            kill(server.process.processIdentifier, SIGHUP)
            try await Task.sleep(for: .milliseconds(300))
            kill(server.process.processIdentifier, SIGHUP)
            let body = try await offload { () -> String in
                let data = output.fileHandleForReading.readDataToEndOfFile()
                curl.waitUntilExit()
                return String(decoding: data, as: UTF8.self)
            }
            #expect(curl.terminationStatus == 0 && body == "00010203040506070809",
                    "the transfer should finish whole across the reloads; curl exit \(curl.terminationStatus), body '\(body)'\n\(server.logs)")
            let reloads = try await offload { () -> Int in
                let deadline = Date().addingTimeInterval(10)
                var count = 0
                while Date() < deadline {
                    count = server.logs.components(separatedBy: "reloaded").count - 1
                    if count >= 2 { break }
                    usleep(100_000)
                }
                return count
            }
            #expect(reloads == 2, "two reloads applied:\n\(server.logs)")
        }
    }
}
