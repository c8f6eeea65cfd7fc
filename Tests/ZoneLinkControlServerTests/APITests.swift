import Foundation
import Synchronization
import Testing
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

@Suite("HTTP API over the control socket")
struct APITests {
    /// The seed walkthrough (README), steps 3 to 6, over HTTP, each step as the account that does it.
    @Test func theSeedWalkthrough() async throws {
        try await withServer { server in

            // B creates the service: manual accept, zone affinity.
            let created = try await server.request("POST", "/v1/services", as: provider, json: seedService)
            #expect(created.status == 201, "\(created)")
            #expect(created.headers["content-type"] == "application/json; charset=utf-8")
            let service = try created.decode(ServiceView.self)
            #expect(service.id == "epsrv-frankfurt1" && service.autoAcceptConnections == false && service.zoneAffinity == true)
            #expect(service.dnsName == "epsrv-frankfurt1.eu-central-1.privatelink.internal" && service.origin == .api)

            // Not yet whitelisted, A can neither see it nor connect.
            #expect(try await server.request("GET", "/v1/services", as: consumer).decode([ServiceView].self).isEmpty)
            #expect(try await server.request("POST", "/v1/endpoints", as: consumer, json: seedEndpoint).status == 404)

            // B whitelists A.
            let entry = try await server.request("POST", "/v1/services/epsrv-frankfurt1/whitelist", as: provider, json: Components.Schemas.AddWhitelistEntryRequest(account: accountA))
            #expect(entry.status == 201, "\(entry)")
            #expect(try entry.decode(WhitelistEntry.self) == WhitelistEntry(service: "epsrv-frankfurt1", account: accountA, origin: .api))
            let whitelist = try await server.request("GET", "/v1/services/epsrv-frankfurt1/whitelist", as: provider).decode([WhitelistEntry].self)
            #expect(whitelist.map(\.account) == [accountA])
            #expect(try await server.request("GET", "/v1/services", as: consumer).decode([ServiceView].self).map(\.id) == ["epsrv-frankfurt1"])

            // A creates the endpoint in VPC 1: Disconnected, an ENI allocated in vsw-1b.
            let endpointReply = try await server.request("POST", "/v1/endpoints", as: consumer, json: seedEndpoint)
            #expect(endpointReply.status == 201, "\(endpointReply)")
            let endpoint = try endpointReply.decode(EndpointView.self)
            #expect(endpoint.connection == .disconnected)
            #expect(endpoint.placement?.enis.map(\.address) == ["10.10.2.4"])
            #expect(endpoint.placement?.dnsName == "ep-consumer1.epsrv-frankfurt1.eu-central-1.privatelink.internal")
            #expect(server.published.all.last?.endpoints.map(\.id) == ["ep-consumer1"])

            // B sees the connection waiting, without A's placement.
            let waiting = try await server.request("GET", "/v1/services/epsrv-frankfurt1/connections", as: provider).decode([EndpointView].self)
            #expect(waiting.map(\.id) == ["ep-consumer1"] && waiting[0].connection == .disconnected && waiting[0].placement == nil)

            // B accepts: Connected, and the published catalog says so.
            let accepted = try await server.request("POST", "/v1/services/epsrv-frankfurt1/connections/ep-consumer1/accept", as: provider)
            #expect(accepted.status == 200, "\(accepted)")
            #expect(try accepted.decode(EndpointView.self).connection == .connected)
            let afterAccept = try #require(server.published.all.last)
            #expect(afterAccept.connection(of: afterAccept.endpoints[0]) == .connected)
            #expect(try await server.request("GET", "/v1/endpoints/ep-consumer1", as: consumer).decode(EndpointView.self).connection == .connected)

            // B rejects: Rejected.
            let rejected = try await server.request("POST", "/v1/services/epsrv-frankfurt1/connections/ep-consumer1/reject", as: provider)
            #expect(try rejected.decode(EndpointView.self).connection == .rejected)
            let afterReject = try #require(server.published.all.last)
            #expect(afterReject.connection(of: afterReject.endpoints[0]) == .rejected)

            // Disconnect applies to Connected connections only: a conflict naming the state.
            let conflict = try await server.request("POST", "/v1/services/epsrv-frankfurt1/connections/ep-consumer1/disconnect", as: provider)
            #expect(conflict.status == 409 && conflict.error?.code == "conflict" && conflict.text.contains("Rejected"), "\(conflict)")

            // C, on no whitelist, is refused as if the service did not exist; the refusal names
            // the whitelist rule.
            let refused = try await server.request(
                "POST", "/v1/endpoints", as: stranger,
                json: CreateEndpointRequest(service: "epsrv-frankfurt1", vpc: "vpc-3", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-3b")]))
            #expect(refused.status == 404)
            #expect(refused.error?.code == "not_found")
            #expect(refused.error?.message.contains("the accounts on its whitelist") == true, "\(refused)")

            // Everything acknowledged is on disk.
            let onDisk = try StateStore(path: server.directory.file(StateStore.fileName)).load()
            #expect(onDisk == (await server.service.current.state))
            #expect(onDisk.connection(of: "ep-consumer1") == .rejected)
        }
    }

    @Test func withoutOrWithAWrongTokenIs401() async throws {
        try await withServer { server in
            for path in ["/v1/services", "/v1/endpoints", "/v1/nat", "/v1/health", "/metrics"] {
                let missing = try await server.request("GET", path)
                #expect(missing.status == 401, "\(path): \(missing)")
                #expect(missing.error?.code == "unauthorized" && missing.error?.issues == [])
                #expect(missing.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
                let wrong = try await server.request("GET", path, token: "not-a-token")
                #expect(wrong.status == 401 && wrong.error?.code == "unauthorized", "\(path): \(wrong)")
                let otherScheme = try await server.request("GET", path, headers: ["Authorization: Basic \(tokenOfOperator)"])
                #expect(otherScheme.status == 401)
            }
            // A change without a token changes nothing.
            let refused = try await server.request("POST", "/v1/services", as: nil, json: seedService)
            #expect(refused.status == 401)
            #expect(try await server.request("GET", "/v1/services", as: .operator).decode([ServiceView].self).isEmpty)
            // The scheme's case does not matter.
            #expect(try await server.request("GET", "/v1/services", headers: ["Authorization: bearer \(tokenOfOperator)"]).status == 200)
        }
    }

    @Test func refusalsAre403WithTheRuleNamed() async throws {
        try await withServer { server in
            #expect(try await server.request("POST", "/v1/services", as: provider, json: seedService).status == 201)
            // A, whitelisted, sees the service but may not change it.
            #expect(try await server.request("POST", "/v1/services/epsrv-frankfurt1/whitelist", as: provider, json: Components.Schemas.AddWhitelistEntryRequest(account: accountA)).status == 201)
            let reply = try await server.request("PATCH", "/v1/services/epsrv-frankfurt1", as: consumer, json: UpdateServiceRequest(zoneAffinity: false))
            #expect(reply.status == 403)
            #expect(reply.error?.code == "forbidden")
            #expect(reply.error?.message == "account 1111111111111111 is not the provider of epsrv-frankfurt1: only its provider or the operator may change it")
            // A service on another account's load balancer.
            let foreign = try await server.request(
                "POST", "/v1/services", as: provider,
                json: CreateServiceRequest(resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-3b")]))
            #expect(foreign.status == 403 && foreign.error?.message.contains("belongs to another account") == true, "\(foreign)")
            // Metrics are the operator's.
            let metrics = try await server.request("GET", "/metrics", as: provider)
            #expect(metrics.status == 403 && metrics.error?.message.contains("only the operator") == true)
        }
    }

    @Test func validationProblemsAre422WithIssuesByKeyPath() async throws {
        try await withServer { server in
            #expect(try await server.request("POST", "/v1/services", as: provider, json: seedService).status == 201)
            #expect(try await server.request("POST", "/v1/services/epsrv-frankfurt1/whitelist", as: provider, json: Components.Schemas.AddWhitelistEntryRequest(account: accountA)).status == 201)
            let request = CreateEndpointRequest(
                service: "epsrv-frankfurt1", vpc: "vpc-1",
                zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.9.9")])
            let reply = try await server.request("POST", "/v1/endpoints", as: consumer, json: request)
            #expect(reply.status == 422, "\(reply)")
            let body = try #require(reply.error)
            #expect(body.code == "invalid")
            #expect(body.issues.map(\.keyPath) == ["zones[0].address"], "\(body)")
            #expect(!body.issues[0].hint.isEmpty && body.message.contains("zones[0].address"))

            let notAnAccount = try await server.request("POST", "/v1/services/epsrv-frankfurt1/whitelist", as: provider, json: Components.Schemas.AddWhitelistEntryRequest(account: "account-a"))
            #expect(notAnAccount.status == 422 && notAnAccount.error?.issues.first?.keyPath == "account", "\(notAnAccount)")
            // Nothing of it was stored.
            #expect(try StateStore(path: server.directory.file(StateStore.fileName)).load().endpoints.isEmpty)
        }
    }

    @Test func malformedRequestsAre4xxInTheErrorShape() async throws {
        try await withServer { server in
            let notJSON = try await server.request("POST", "/v1/services", token: tokenOfProvider, body: "{not json")
            #expect(notJSON.status == 400 && notJSON.error?.code == "bad_request", "\(notJSON)")
            let wrongType = try await server.request("POST", "/v1/services", token: tokenOfProvider, body: #"{"resources": [{"zone": 1, "loadBalancer": "clb-1b"}]}"#)
            #expect(wrongType.status == 400 && wrongType.error?.issues.first?.keyPath == "resources[0].zone", "\(wrongType)")
            let missing = try await server.request("POST", "/v1/endpoints", token: tokenOfConsumer, body: #"{"service": "epsrv-x", "vpc": "vpc-1"}"#)
            #expect(missing.status == 400 && missing.error?.issues.first?.keyPath == "zones", "\(missing)")
            let empty = try await server.request("PATCH", "/v1/services/epsrv-x", token: tokenOfProvider, body: "")
            #expect(empty.status == 400, "\(empty)")
            let tooLarge = try await server.request("POST", "/v1/services", token: tokenOfProvider, body: String(repeating: " ", count: (1 << 20) + 1))
            #expect(tooLarge.status == 413 && tooLarge.error?.code == "too_large", "\(tooLarge)")

            let unknown = try await server.request("GET", "/v1/nothing", token: tokenOfOperator)
            #expect(unknown.status == 404 && unknown.error?.code == "not_found")
            let noSuchService = try await server.request("GET", "/v1/services/epsrv-none", token: tokenOfOperator)
            #expect(noSuchService.status == 404 && noSuchService.error?.message.hasPrefix("no endpoint service 'epsrv-none'") == true)
            let method = try await server.request("PUT", "/v1/services", token: tokenOfOperator, body: "{}")
            #expect(method.status == 405 && method.headers["allow"] == "GET, POST" && method.error?.code == "method_not_allowed", "\(method)")
            let head = try await server.request("DELETE", "/v1/services/epsrv-x/connections", token: tokenOfOperator)
            #expect(head.status == 405 && head.headers["allow"] == "GET")
            // Percent-encoded parameters are decoded.
            let encoded = try await server.request("GET", "/v1/endpoints/ep%2Dnone", token: tokenOfOperator)
            #expect(encoded.status == 404 && encoded.error?.message.hasPrefix("no endpoint 'ep-none'") == true, "\(encoded)")
        }
    }

    @Test func fileObjectsAreReadOnlyHere() async throws {
        try await withServer(yaml: infrastructureYAML + fileServiceYAML) { server in
            let shown = try await server.request("GET", "/v1/services/epsrv-file", as: provider).decode(ServiceView.self)
            #expect(shown.origin == .file && shown.whitelist?.map(\.origin) == [.file])
            let deleted = try await server.request("DELETE", "/v1/services/epsrv-file", as: provider)
            #expect(deleted.status == 409 && deleted.error?.code == "file_managed" && deleted.text.contains("edit the file"), "\(deleted)")
            let unlisted = try await server.request("DELETE", "/v1/services/epsrv-file/whitelist/\(accountA)", as: provider)
            #expect(unlisted.status == 409 && unlisted.error?.code == "file_managed")
        }
    }

    @Test func natHealthAndMetrics() async throws {
        let rows = [
            Components.Schemas.NATRow(_protocol: .tcp, vpc: "vpc-1", client: "10.10.2.10:5000", eni: "10.10.2.4:80", nat: "192.168.24.240:40001",
                   target: "192.168.24.200:80", endpoint: "ep-consumer1", ageSeconds: 1.5, bytesFromClient: 10, bytesFromTarget: 20),
            Components.Schemas.NATRow(_protocol: .udp, vpc: "vpc-3", client: "10.10.2.10:5000", eni: "10.10.2.5:53", nat: "10.10.2.240:40001",
                   target: "10.10.2.200:53", endpoint: "ep-other", ageSeconds: 0, bytesFromClient: 1, bytesFromTarget: 0),
        ]
        let report = GatewayHealth(
            backends: [
                Components.Schemas.BackendHealth(loadBalancer: "clb-1b", listener: "80", address: "192.168.24.200:80", healthy: true, shiftedAway: false),
                Components.Schemas.BackendHealth(loadBalancer: "clb-3b", listener: "80", address: "10.10.2.200:80", healthy: false, shiftedAway: false),
            ],
            loadBalancers: [
                Components.Schemas.LoadBalancerPlacement(loadBalancer: "clb-1b", zone: "eu-central-1b", backupZone: "eu-central-1a", state: .failedOver, servingZone: "eu-central-1a"),
                Components.Schemas.LoadBalancerPlacement(loadBalancer: "clb-3b", zone: "eu-central-1b", state: .home, servingZone: "eu-central-1b"),
            ],
            zones: [Components.Schemas.ZoneHealth(endpoint: "ep-consumer1", zone: "eu-central-1b", healthy: true, shiftedAway: false, state: .failedOver, servingZone: "eu-central-1a")])
        try await withServer(tcp: true, nat: { rows }, health: { report }) { server in
            _ = try await server.request("POST", "/v1/services", as: provider, json: seedService)
            _ = try await server.request("POST", "/v1/services/epsrv-frankfurt1/whitelist", as: provider, json: Components.Schemas.AddWhitelistEntryRequest(account: accountA))
            _ = try await server.request("POST", "/v1/endpoints", as: consumer, json: seedEndpoint)

            // The NAT table: the operator sees every flow, an account the flows of its endpoints,
            // in the JSON rows `zonelink nat list --json` prints.
            let all = try await server.request("GET", "/v1/nat", as: .operator)
            #expect(try all.decode([Components.Schemas.NATRow].self) == rows)
            #expect(all.text.contains(#""ageSeconds":1.5"#) && all.text.contains(#""protocol":"tcp""#))
            #expect(try await server.request("GET", "/v1/nat", as: consumer).decode([Components.Schemas.NATRow].self) == [rows[0]])
            #expect(try await server.request("GET", "/v1/nat", as: provider).decode([Components.Schemas.NATRow].self).isEmpty)

            let operatorHealth = try await server.request("GET", "/v1/health", as: .operator).decode(Components.Schemas.HealthReport.self)
            #expect(operatorHealth.status == .degraded && operatorHealth.backends.count == 2 && operatorHealth.configSerial > 1)
            let providerHealth = try await server.request("GET", "/v1/health", as: provider).decode(Components.Schemas.HealthReport.self)
            #expect(providerHealth.status == .ok && providerHealth.backends.map(\.loadBalancer) == ["clb-1b"] && providerHealth.zones.count == 1)
            // Where its balancer and ENIs serve from: its own only, failed over to the backup zone.
            #expect(providerHealth.loadBalancers.map(\.loadBalancer) == ["clb-1b"] && providerHealth.loadBalancers.first?.state == .failedOver)
            #expect(providerHealth.zones.first?.state == .failedOver && providerHealth.zones.first?.servingZone == "eu-central-1a")
            let strangerHealth = try await server.request("GET", "/v1/health", as: stranger).decode(Components.Schemas.HealthReport.self)
            #expect(strangerHealth.backends.map(\.loadBalancer) == ["clb-3b"] && strangerHealth.zones.isEmpty)
            #expect(strangerHealth.loadBalancers.map(\.loadBalancer) == ["clb-3b"])

            // Metrics: requests by route and status, the plane's objects, a gauge set from outside,
            // and one a collector sets when (and only when) a scrape asks.
            server.metrics.gauge("zonelink_nat_ports_in_use", labels: [("pool", "vpc-2")]).record(7)
            let scrapes = Mutex(0)
            let gauge = server.metrics.gauge("zonelink_test_scrapes")
            server.metrics.collectBeforeScrape {
                gauge.record(scrapes.withLock { count in
                    count += 1
                    return count
                })
            }
            #expect(scrapes.withLock { $0 } == 0, "a collector runs only for a scrape")
            let metrics = try await server.request("GET", "/metrics", as: .operator)
            #expect(metrics.status == 200 && metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(metrics.text.contains(#"zonelink_control_requests_total{route="POST /v1/services",status="201"} 1"#), "\(metrics.text)")
            #expect(metrics.text.contains(#"zonelink_control_requests_total{route="GET /v1/nat",status="200"} 3"#))
            #expect(metrics.text.contains(#"zonelink_control_endpoints{connection="Disconnected"} 1"#))
            #expect(metrics.text.contains(#"zonelink_control_changes_total{operation="createEndpoint"} 1"#))
            #expect(metrics.text.contains(#"zonelink_nat_ports_in_use{pool="vpc-2"} 7"#))
            #expect(metrics.text.contains("zonelink_test_scrapes 1.0\n"), "the collector ran before this scrape was rendered: \(metrics.text)")

            // The same API on loopback TCP.
            let port = try #require(server.tcpPort)
            let overTCP = try await HTTPReply.exchange(
                tcpPort: port, method: "GET", path: "/v1/services/epsrv-frankfurt1", headers: ["Authorization: Bearer \(tokenOfConsumer)"], body: nil)
            #expect(overTCP.status == 200)
            #expect(try overTCP.decode(ServiceView.self).id == "epsrv-frankfurt1")
        }
    }
}
