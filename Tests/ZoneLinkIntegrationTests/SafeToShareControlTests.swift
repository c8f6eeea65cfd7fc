// Safe to share, the control plane's part: a success always means "applied", files and
// secrets stay private, and no tenant can take another's names, against the real server.
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("Safe to share: applied before acknowledged, private files, names", .serialized)
struct SafeToShareControlTests {
    /// The ENI port of the test config (`zones/local.yaml` with free ports).
    static func eniPort(_ yaml: String) throws -> UInt16 {
        let line = yaml.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("port: ") }
        guard let line, let port = UInt16(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) else {
            throw HarnessError("no listener port in the test config")
        }
        return port
    }

    static func mode(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_mode & 0o7777) : -1
    }

    /// A TCP socket listening at `host:port`, without SO_REUSEPORT, so nothing else can bind it.
    static func squat(_ host: String, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in(port: port, host: host)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw HarnessError("cannot listen on \(host):\(port): errno \(errno)")
        }
        return fd
    }

    @Test func aChangeTheGatewayRefusesIsNotCommittedAndTheOldStateServes() throws {
        let server = try ControlAPIServer(tag: "notapplied")
        defer { server.cleanUp() }
        try server.start()
        let port = try Self.eniPort(server.config.yaml)
        let squatter = try Self.squat("127.10.1.77", port)
        defer { close(squatter) }

        let create = try server.request("POST", "/v1/endpoints", json: """
            {"id": "ep-clash", "service": "epsrv-frankfurt1", "vpc": "vpc-1", "account": "1111111111111111",
             "zones": [{"zone": "eu-central-1a", "vswitch": "vsw-1a", "address": "127.10.1.77"}]}
            """)
        #expect(create.status == 201, "\(create.body)\n\(server.logs)")
        // Accepting makes the ENI listen on 127.10.1.77, which another program holds.
        let accept = try server.request("POST", "/v1/services/epsrv-frankfurt1/connections/ep-clash/accept")
        #expect(accept.status == 409, "\(accept.body)")
        #expect(accept.body.contains("not_applied") && accept.body.contains("127.10.1.77"), "\(accept.body)")
        let after = try server.request("GET", "/v1/endpoints/ep-clash")
        #expect(after.body.contains("Disconnected"), "\(after.body)")

        // The old state keeps serving: DNS answers the file's endpoint, the API its reads.
        let dig = try runProcessBlocking(Tools.dig!, ["@127.0.0.1", "-p", "\(server.config.pinnedPort)", "+short",
                                                      "ep-consumer1-eu-central-1a.epsrv-frankfurt1.eu-central-1.privatelink.internal"])
        #expect(dig.stdout.contains("127.10.1.4"), "\(dig.stdout)\(dig.stderr)")

        // Nothing was committed: after a restart the connection is still Disconnected.
        #expect(server.stop(timeout: 15), "\(server.logs)")
        close(squatter)
        try server.start()
        let restarted = try server.request("GET", "/v1/endpoints/ep-clash")
        #expect(restarted.body.contains("Disconnected"), "\(restarted.body)")
        // With the address free the same change applies.
        let again = try server.request("POST", "/v1/services/epsrv-frankfurt1/connections/ep-clash/accept")
        #expect(again.status == 200, "\(again.body)\n\(server.logs)")
    }

    @Test func theStateDirectoryAndItsFilesArePrivate() throws {
        let server = try ControlAPIServer(tag: "modes")
        defer { server.cleanUp() }
        chmod(server.stateDir.path, 0o755)
        try server.start()
        let dir = server.stateDir.path
        #expect(Self.mode(dir) == 0o700)
        #expect(Self.mode(dir + "/state.sqlite") == 0o600)
        #expect(Self.mode(dir + "/lock") == 0o600)
        #expect(Self.mode(dir + "/control.sock") == 0o660)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: dir + "/state.sqlite" + suffix) {
            #expect(Self.mode(dir + "/state.sqlite" + suffix) == 0o600, "state.sqlite\(suffix)")
        }
    }

    @Test func aTokensFileOthersMayWriteIsRefused() throws {
        let server = try ControlAPIServer(tag: "tokens-mode")
        defer { server.cleanUp() }
        let tokens = server.stateDir.appendingPathComponent("tokens").path
        chmod(tokens, 0o666)
        let result = try runProcessBlocking(Paths.requireZonelink().path, [
            "serve", "--config", server.configURL.path, "--state-dir", server.stateDir.path, "--threads", "1",
        ], cwd: server.dir, timeout: 60)
        #expect(result.exited && result.status == 1, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("group or others may write it"), "\(result.stderr)")
    }

    @Test func tokensWithCRLFAreReadAndBadLinesNeverEchoed() throws {
        let server = try ControlAPIServer(tag: "tokens-crlf")
        defer { server.cleanUp() }
        let tokens = server.stateDir.appendingPathComponent("tokens")
        try "# tokens\r\noperator \(sha256Hex(server.token))\r\n".write(to: tokens, atomically: true, encoding: .utf8)
        try server.start()
        #expect(try server.request("GET", "/v1/health").status == 200)

        // A token pasted in clear instead of its digest: refused on reload, never logged.
        let secret = "clear-secret-\(UInt64.random(in: 0...UInt64.max))"
        try "operator \(secret)\n".write(to: tokens, atomically: true, encoding: .utf8)
        let pid = try #require(server.process?.processIdentifier)
        kill(pid, SIGHUP)
        let deadline = monotonicNow() + 30
        while monotonicNow() < deadline, !server.logs.contains("tokens not reloaded") { sleepSeconds(0.1) }
        #expect(server.logs.contains("tokens not reloaded"), "\(server.logs)")
        #expect(!server.logs.contains(secret), "the clear token reached the log")
        #expect(try server.request("GET", "/v1/health").status == 200, "the previous tokens stay")
    }

    @Test func aMissingTokensFileIsSaid() throws {
        let server = try ControlAPIServer(tag: "tokens-missing")
        defer { server.cleanUp() }
        try FileManager.default.removeItem(at: server.stateDir.appendingPathComponent("tokens"))
        let p = Process()
        p.executableURL = try Paths.requireZonelink()
        p.arguments = ["serve", "--config", server.configURL.path, "--state-dir", server.stateDir.path, "--threads", "1"]
        p.currentDirectoryURL = server.dir
        let log = server.dir.appendingPathComponent("missing.stderr")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: log)
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try launchProcess(p)
        defer { p.terminate(); _ = waitForExit(p, timeout: 15) }
        let deadline = monotonicNow() + 30
        var text = ""
        while monotonicNow() < deadline {
            text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if text.contains("no tokens file") { break }
            sleepSeconds(0.1)
        }
        #expect(text.contains("no tokens file") && text.contains("401"), "\(text)")
    }

    @Test func noTenantTakesAnothersNamesThroughTheAPI() throws {
        let server = try ControlAPIServer(tag: "names")
        defer { server.cleanUp() }
        try server.start()
        // ep-consumer1's name in zone b, taken as an endpoint ID: refused with the rule.
        let clash = try server.request("POST", "/v1/endpoints", json: """
            {"id": "ep-consumer1-eu-central-1b", "service": "epsrv-frankfurt1", "vpc": "vpc-1", "account": "1111111111111111",
             "zones": [{"zone": "eu-central-1a", "vswitch": "vsw-1a"}]}
            """)
        #expect(clash.status == 422, "\(clash.body)")
        #expect(clash.body.contains("generated name of") && clash.body.contains("ep-consumer1"), "\(clash.body)")
        // A private domain outside what the operator allows (none here): refused.
        let capture = try server.request("POST", "/v1/services", json: """
            {"id": "epsrv-capture", "account": "2222222222222222", "resources": [{"zone": "eu-central-1b", "loadBalancer": "clb-1b"}],
             "privateDomain": "github.com"}
            """)
        #expect(capture.status == 422, "\(capture.body)")
        #expect(capture.body.contains("privateDomainSuffixes"), "\(capture.body)")
        // A body that says one key twice means nothing: 400.
        let twice = try server.request("POST", "/v1/endpoints", json: """
            {"id": "ep-a", "id": "ep-b", "service": "epsrv-frankfurt1", "vpc": "vpc-1", "zones": []}
            """)
        #expect(twice.status == 400 && twice.body.contains("appears twice"), "\(twice.body)")
    }
}
