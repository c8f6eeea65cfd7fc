import Foundation
import Testing
@testable import ZoneLinkCore

/// `docs/config.md` is the config's reference: every key the parser accepts is documented
/// there, and nothing is documented that the parser would refuse.
@Suite("docs/config.md lists exactly the keys the parser accepts")
struct ConfigReferenceTests {
    /// A config that sets every key at least once, so that the parser walks every mapping.
    static let everyKey = """
        region: eu-central-1
        domain: privatelink.internal
        host: {id: gw-b, zones: [eu-central-1b], vpcs: [vpc-1, vpc-2]}
        dns:
          ttl: 60
          listen:
            - {address: 127.0.0.1:5353, vpc: vpc-1, zone: eu-central-1b, rateLimit: false}
          upstreams: [127.0.0.53:53]
          zoneFiles: []
          tcpIdleTimeout: 10s
          trustedForwarders: [10.10.0.53]
          forwardTimeout: 2s
          cacheMaxTTL: 1h
          cacheSize: 10000
          privateDomainSuffixes: [provider.example]
          limits: {tcpConnections: 1000, tcpConnectionsPerSource: 100, tcpQueuedAnswers: 16, tcpMessageTimeout: 2s,
                   forwardInFlight: 500, forwardInFlightPerClient: 50}
          rateLimit: {responsesPerSecond: 1000, slip: 2, ipv4PrefixLength: 24}
          secondaries:
            - name: vpc1-zone-b
              key: {name: vpc1-b.key, algorithm: hmac-sha256, secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="}
              vpc: vpc-1
              zone: eu-central-1b
              notify: ["127.0.0.1:25400"]
              allowFrom: [127.0.0.0/8]
            - name: vpc1-all
              key: {name: vpc1.key, secretFile: /etc/zonelink/vpc1.key}
              vpc: vpc-1
              allowFrom: [10.10.0.53]
        gateway:
          tcpIdleTimeout: 900s
          udpIdleTimeout: 60s
          natPorts: "1024-65535"
          limits: {flows: 100000, flowsPerEndpoint: 50000, flowsPerClient: 10000, natPortsPerClient: 4096}
          attribution: {enabled: true, maxFileSize: 67108864, files: 8}
          kernelNamespace: zonelink-gw
          spliceAfterExchanges: 0
        control: {connections: 256, headerTimeout: 10s, bodyTimeout: 30s, idleTimeout: 60s, maxBodySize: 1048576, store: sqlite}
        descriptors: {reserve: 512}
        accounts:
          - {id: "1111111111111111", name: account-a}
          - {id: "2222222222222222", name: account-b}
        vpcs:
          - id: vpc-1
            account: account-a
            cidr: 10.10.0.0/16
            netns: vpc1
            interface: lo
            dnsAddress: 10.10.0.2
            vswitches: [{id: vsw-1b, zone: eu-central-1b, cidr: 10.10.2.0/24}]
            securityGroups:
              - id: sg-1
                ingress: [{protocol: tcp, ports: "80", source: 10.10.0.0/16}]
          - id: vpc-2
            account: account-b
            cidr: 192.168.0.0/16
            netns: vpc2
            vswitches: [{id: vsw-2b, zone: eu-central-1b, cidr: 192.168.24.0/24}, {id: vsw-2a, zone: eu-central-1a, cidr: 192.168.23.0/24}]
        loadBalancers:
          - id: clb-1
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            natAddresses: [192.168.24.240]
            listeners:
              - protocol: tcp
                port: 80
                backendPort: 8080
                scheduler: wrr
                backends: [{address: 192.168.24.200, weight: 100}]
                healthCheck: {type: http, path: /, expectStatus: 200, interval: 2s, timeout: 5s, healthyThreshold: 3, unhealthyThreshold: 3}
          - id: clb-2
            account: account-b
            vpc: vpc-2
            zone: eu-central-1b
            backupZone: eu-central-1a
            natAddresses: [192.168.24.241, 192.168.23.241]
            address: 192.168.24.100
            listeners: [{protocol: tcp, port: 443}]
        endpointServices:
          - id: epsrv-frankfurt1
            account: account-b
            resources: [{zone: eu-central-1b, loadBalancer: clb-1}]
            autoAcceptConnections: false
            zoneAffinity: true
            whitelist: ["1111111111111111"]
            privateDomain: api.provider.example
            proxyProtocol: v2
            dataPlane: relay
        endpoints:
          - id: ep-consumer1
            account: account-a
            service: epsrv-frankfurt1
            vpc: vpc-1
            securityGroups: [sg-1]
            zones: [{zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.50}]
            connection: Connected
        """

    static var reference: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/config.md"), encoding: .utf8)) ?? ""
    }

    /// The key paths in the first column of the reference's tables: rows `| \`a.b[].c\` | …`.
    static var documentedKeys: Set<String> {
        var keys: Set<String> = []
        for line in reference.split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(3).prefix { $0 != "`" }
            if !cell.isEmpty, !cell.contains(" ") { keys.insert(String(cell)) }
        }
        return keys
    }

    @Test func theExampleOfEveryKeyIsValid() throws {
        _ = try Catalog(configuration: Configuration.parse(yaml: Self.everyKey, file: "every-key.yaml"), file: "every-key.yaml")
    }

    @Test func everyAcceptedKeyIsDocumentedAndEveryDocumentedKeyAccepted() {
        let accepted = Configuration.acceptedKeys(readingYAML: Self.everyKey)
        let documented = Self.documentedKeys
        #expect(!documented.isEmpty, "no key rows found in docs/config.md")
        let undocumented = accepted.subtracting(documented).sorted()
        let unknown = documented.subtracting(accepted).sorted()
        #expect(undocumented.isEmpty, "accepted by the parser but not in docs/config.md: \(undocumented)")
        #expect(unknown.isEmpty, "in docs/config.md but not accepted by the parser: \(unknown)")
    }
}
