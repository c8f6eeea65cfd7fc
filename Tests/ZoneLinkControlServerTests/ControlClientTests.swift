import Foundation
import OpenAPIRuntime
import Testing
import ZoneLinkAPI
import ZoneLinkControl

/// The client the command line talks to the API with: generated from docs/openapi.yaml, over
/// `ControlTransport` (the control socket or loopback TCP).
@Suite("Generated control client over ControlTransport")
struct ControlClientTests {
    @Test func serverAddressesAreReadAsUsersWriteThem() throws {
        #expect(try ControlServerAddress("/run/zonelink/control.sock") == .unix(path: "/run/zonelink/control.sock"))
        #expect(try ControlServerAddress(".zonelink/control.sock") == .unix(path: ".zonelink/control.sock"))
        #expect(try ControlServerAddress("unix:/tmp/x.sock") == .unix(path: "/tmp/x.sock"))
        #expect(try ControlServerAddress("http://127.0.0.1:7070/") == .tcp(host: "127.0.0.1", port: 7070))
        #expect(try ControlServerAddress("localhost:7070") == .tcp(host: "localhost", port: 7070))
        #expect(throws: ControlTransportError.self) { try ControlServerAddress("http://127.0.0.1:http") }
    }

    @Test func aMissingServerIsAnErrorThatSaysWhatToCheck() async {
        let client = Client.control(address: .unix(path: "/tmp/zlctl-none/control.sock"), token: "x")
        do {
            _ = try await client.listServices()
            Issue.record("expected an error")
        } catch {
            #expect(ControlRefusal(error) == nil)
            #expect("\(error)".contains("is `zonelink serve` running"), "\(error)")
        }
    }

    @Test func itTalksToTheServerWithItsTokenAndThrowsRefusals() async throws {
        try await withServer(tcp: true) { server in
            let port = try #require(server.tcpPort)
            let b = Client.control(address: .unix(path: server.socketPath), token: tokenOfProvider)
            let request = Components.Schemas.CreateServiceRequest(
                id: seedService.id, resources: seedService.resources.map { .init(zone: $0.zone, loadBalancer: $0.loadBalancer) },
                autoAcceptConnections: seedService.autoAcceptConnections, zoneAffinity: seedService.zoneAffinity)
            let created = try await b.createService(body: .json(request)).created.body.json
            #expect(created.id == "epsrv-frankfurt1" && created.origin == .api)
            let shown = try await b.showService(path: .init(service: "epsrv-frankfurt1")).ok.body.json
            #expect(shown.whitelist == [])

            // A is not on the whitelist: the service is as unknown to it as one that does not
            // exist, and the client throws the API's error body.
            let a = Client.control(address: try ControlServerAddress("127.0.0.1:\(port)"), token: tokenOfConsumer)
            do {
                _ = try await a.showService(path: .init(service: "epsrv-frankfurt1"))
                Issue.record("expected a refusal")
            } catch {
                let refusal = try #require(ControlRefusal(error), "\(error)")
                #expect(refusal.status == 404 && refusal.error?.code == "not_found", "\(refusal)")
            }
            // Path parameters are percent-encoded on the way and decoded by the server.
            do {
                _ = try await b.showService(path: .init(service: "epsrv-a/b c"))
                Issue.record("expected a refusal")
            } catch {
                let refusal = try #require(ControlRefusal(error), "\(error)")
                #expect(refusal.status == 404 && refusal.error?.message.contains("epsrv-a/b c") == true, "\(refusal)")
            }
        }
    }
}
