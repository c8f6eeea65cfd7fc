import Foundation
import Testing
import ZoneLinkControl
@testable import ZoneLinkControlServer

@Suite("ControlClient: what the command line talks to the API with")
struct ControlClientTests {
    @Test func serverArgumentsAreSocketsOrHTTP() throws {
        #expect(try ControlClient(server: "/run/zonelink/control.sock", token: nil).address == .unix(path: "/run/zonelink/control.sock"))
        #expect(try ControlClient(server: ".zonelink/control.sock", token: nil).address == .unix(path: ".zonelink/control.sock"))
        #expect(try ControlClient(server: "unix:/tmp/x.sock", token: nil).address == .unix(path: "/tmp/x.sock"))
        #expect(try ControlClient(server: "http://127.0.0.1:7070/", token: nil).address == .tcp(host: "127.0.0.1", port: 7070))
        #expect(try ControlClient(server: "localhost:7070", token: nil).address == .tcp(host: "localhost", port: 7070))
        #expect(throws: ControlClientError.self) { try ControlClient(server: "http://127.0.0.1:http", token: nil) }
    }

    @Test func aMissingServerIsAnErrorThatSaysWhatToCheck() {
        let client = ControlClient(address: .unix(path: "/tmp/zlctl-none/control.sock"), token: "x")
        do {
            _ = try client.send("GET", "/v1/services")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("is `zonelink serve` running"))
        }
    }

    @Test func itTalksToTheServerWithItsToken() async throws {
        try await withServer(tcp: true) { server in
            let port = try #require(server.tcpPort)
            let socketPath = server.socketPath
            let (created, shown, overTCP) = try await withCheckedThrowingContinuation { continuation in
                Thread {
                    continuation.resume(with: Result {
                        let b = ControlClient(address: .unix(path: socketPath), token: tokenOfProvider)
                        let created = try b.send("POST", "/v1/services", json: seedService)
                        let shown = try b.send("GET", "/v1/services/epsrv-frankfurt1")
                        let overTCP = try ControlClient(server: "127.0.0.1:\(port)", token: tokenOfConsumer).send("GET", "/v1/services/epsrv-frankfurt1")
                        return (created, shown, overTCP)
                    })
                }.start()
            }
            #expect(created.status == 201 && created.isSuccess)
            #expect(try shown.decode(ServiceView.self).whitelist == [])
            // A is not on the whitelist: the service is as unknown to it as one that does not exist.
            #expect(overTCP.status == 404 && overTCP.error?.code == "not_found")
        }
    }
}
