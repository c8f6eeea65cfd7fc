// `zonelink events --follow`: a walkthrough's connection changes arrive in order on the
// consumer's stream, and never on another account's.
import Foundation
import Testing
import ZoneLinkTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("zonelink events --follow", .serialized)
struct EventsFollowTests {
    static let tokens = ["1111111111111111": "events-token-a", "2222222222222222": "events-token-b", "3333333333333333": "events-token-c"]

    /// `zonelink events --follow --json` as `token`, its output in a file.
    final class Follower: @unchecked Sendable {
        let process = Process()
        let output: URL

        init(token: String, server: ControlAPIServer, name: String) throws {
            output = server.dir.appendingPathComponent("events-\(name).out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            process.executableURL = Paths.zonelinkBinary
            process.arguments = ["events", "--follow", "--json", "--server", "http://127.0.0.1:\(server.controlPort)", "--token", token]
            process.standardOutput = try FileHandle(forWritingTo: output)
            let errors = server.dir.appendingPathComponent("events-\(name).err")
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: errors)
            try launchProcess(process)
        }

        var events: [[String: Any]] {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        func stop() {
            if process.isRunning { process.terminate() }
            _ = waitForExit(process, timeout: 5)
        }
    }

    @Test("a walkthrough's state changes arrive in order; another account's events never reach a consumer")
    func walkthroughInOrder() async throws {
        let server = try ControlAPIServer(tag: "events-follow")
        defer { server.cleanUp() }
        // Tokens for the three accounts besides the operator's.
        let tokensFile = server.stateDir.appendingPathComponent("tokens")
        var lines = try String(contentsOf: tokensFile, encoding: .utf8)
        for (account, token) in Self.tokens { lines += "\(account) \(sha256Hex(token))\n" }
        try lines.write(to: tokensFile, atomically: true, encoding: .utf8)
        try await offload { try server.start() }

        let consumer = try Follower(token: Self.tokens["1111111111111111"]!, server: server, name: "a")
        let stranger = try Follower(token: Self.tokens["3333333333333333"]!, server: server, name: "c")
        defer {
            consumer.stop()
            stranger.stop()
        }
        let port = server.controlPort
        @Sendable func call(_ method: String, _ path: String, as token: String, _ json: String? = nil) throws -> HTTPReply {
            try httpRequest(port: port, method: method, path: path, token: token, body: json, timeout: 10)
        }
        let (a, b, c) = (Self.tokens["1111111111111111"]!, Self.tokens["2222222222222222"]!, Self.tokens["3333333333333333"]!)
        let statuses = try await offload { () throws -> [Int] in
            // Give both followers their stream before anything happens (they replay the recent
            // events anyway, so this only keeps the test about live delivery).
            sleepSeconds(1)
            // The seed's steps 3–6, then a disconnect, on a service and endpoint of their own;
            // then account C tries something it may not (a refusal, its own event).
            return try [
                call("POST", "/v1/services", as: b, #"{"id":"epsrv-events","resources":[{"zone":"eu-central-1b","loadBalancer":"clb-1b"}],"autoAcceptConnections":false}"#),
                call("POST", "/v1/services/epsrv-events/whitelist", as: b, #"{"account":"1111111111111111"}"#),
                call("POST", "/v1/endpoints", as: a, #"{"id":"ep-events","service":"epsrv-events","vpc":"vpc-1","zones":[{"zone":"eu-central-1b","vswitch":"vsw-1b"}]}"#),
                call("POST", "/v1/services/epsrv-events/connections/ep-events/accept", as: b),
                call("POST", "/v1/services/epsrv-events/connections/ep-events/disconnect", as: b),
                call("POST", "/v1/services/epsrv-events/connections/ep-events/accept", as: c),
            ].map(\.status)
        }
        #expect(statuses == [201, 201, 201, 200, 200, 404], "\(statuses)")
        let wanted = ["ep-events to epsrv-events created: Disconnected", "ep-events to epsrv-events: Disconnected → Connected",
                      "ep-events to epsrv-events: Connected → Disconnected"]
        let arrived = try await offload {
            try GatewayLab.poll(timeout: 30) {
                consumer.events.filter { $0["kind"] as? String == "connection" }.count >= wanted.count
                    && stranger.events.contains { $0["kind"] as? String == "refusal" }
            }
        }
        let heard = consumer.events.filter { $0["kind"] as? String == "connection" }.compactMap { $0["message"] as? String }
        #expect(arrived && heard == wanted, "consumer heard \(consumer.events)\nstranger heard \(stranger.events)\n\(server.logs)")
        let sequences = consumer.events.compactMap { ($0["sequence"] as? NSNumber)?.intValue }
        #expect(sequences == sequences.sorted() && Set(sequences).count == sequences.count, "sequences \(sequences)")
        // The stranger heard its own refusal and nothing of the others'.
        #expect(!stranger.events.contains { ($0["message"] as? String ?? "").contains("ep-events to") }, "\(stranger.events)")
        #expect(!consumer.events.contains { $0["kind"] as? String == "refusal" }, "\(consumer.events)")
    }
}
