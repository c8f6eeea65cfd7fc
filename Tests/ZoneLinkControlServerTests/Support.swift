import Foundation
import Logging
import Synchronization
import Testing
import ZoneLinkAPI
import ZoneLinkTestSupport
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

#if canImport(Glibc)
import Glibc
#endif

let accountA = "1111111111111111"  // the seed's consumer
let accountB = "2222222222222222"  // the seed's provider
let accountC = "3333333333333333"  // on no whitelist

let provider = Principal.account(accountB)
let consumer = Principal.account(accountA)
let stranger = Principal.account(accountC)

/// The seed's infrastructure (`SeedFixture`), shared with the other test targets.
let infrastructureYAML = SeedFixture.infrastructureYAML

/// A service declared in the file, whitelisting A.
let fileServiceYAML = """
    endpointServices:
      - id: epsrv-file
        account: account-b
        resources: [{zone: eu-central-1b, loadBalancer: clb-1b}]
        whitelist: ["1111111111111111"]

    """

let configFile = "zones/test.yaml"

func configuration(_ yaml: String = infrastructureYAML) throws -> Configuration {
    try Configuration.parse(yaml: yaml, file: configFile)
}

/// The seed's service, created by B: zone b on clb-1b, manual accept, zone affinity.
let seedService = CreateServiceRequest(
    id: "epsrv-frankfurt1", resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")],
    autoAcceptConnections: false, zoneAffinity: true)

/// The seed's endpoint, created by A in VPC 1, zone b.
let seedEndpoint = CreateEndpointRequest(
    id: "ep-consumer1", service: "epsrv-frankfurt1", vpc: "vpc-1", securityGroups: ["sg-1"],
    zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")])

/// Suffixes "s1", "s2", … for generated IDs.
final class Suffixes: Sendable {
    private let next = Mutex(0)
    var function: @Sendable () -> String { { [self] in "s\(next.withLock { $0 += 1; return $0 })" } }
}

/// A fresh directory under /tmp (short: Unix socket paths are limited to 107 bytes), removed
/// by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/zlctl-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed: \(errno)") }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Catalogs handed to the publish callback, in order.
final class Published: Sendable {
    private let catalogs = Mutex<[Catalog]>([])
    var all: [Catalog] { catalogs.withLock { $0 } }
    var count: Int { catalogs.withLock { $0.count } }
    var publish: ControlService.Publish { { [self] catalog in catalogs.withLock { $0.append(catalog) } } }
}

/// The tokens of the tests: one per principal, the token being the name.
let tokenOfProvider = "token-of-b"
let tokenOfConsumer = "token-of-a"
let tokenOfStranger = "token-of-c"
let tokenOfOperator = "token-of-operator"

let testTokens = TokenStore([
    TokenTable.digest(of: tokenOfProvider): provider,
    TokenTable.digest(of: tokenOfConsumer): consumer,
    TokenTable.digest(of: tokenOfStranger): stranger,
    TokenTable.digest(of: tokenOfOperator): .operator,
])

// MARK: A running API

/// `ControlServer` over a store in a temporary directory, serving on `<dir>/control.sock`
/// (and TCP when asked) until `stop()`.
final class RunningServer: Sendable {
    let directory: TemporaryDirectory
    let service: ControlService
    let published: Published
    let metrics: ControlMetrics
    /// The routes the generated server registered.
    let routes: APIRoutes
    let socketPath: String
    let tcpPort: Int?
    private let task: Task<Void, any Error>

    private init(
        directory: TemporaryDirectory, service: ControlService, published: Published, metrics: ControlMetrics,
        routes: APIRoutes, socketPath: String, tcpPort: Int?, task: Task<Void, any Error>
    ) {
        self.directory = directory
        self.service = service
        self.published = published
        self.metrics = metrics
        self.routes = routes
        self.socketPath = socketPath
        self.tcpPort = tcpPort
        self.task = task
    }

    static func start(
        yaml: String = infrastructureYAML, tcp: Bool = false,
        nat: @escaping @Sendable () async -> [Components.Schemas.NATRow] = { [] },
        health: @escaping @Sendable () async -> GatewayHealth = { GatewayHealth() }
    ) async throws -> RunningServer {
        let directory = try TemporaryDirectory()
        let store = try StateStore.open(stateDirectory: directory.path)
        let published = Published()
        let service = try await ControlService(
            base: configuration(yaml), file: configFile, store: store, suffix: Suffixes().function, publish: published.publish)
        let metrics = ControlMetrics()
        let api = try ControlAPI(
            service: service, tokens: testTokens, metrics: metrics, nat: nat, health: health,
            explainDNS: { query in
                // The DNS engine's side is tested in ZoneLinkDNSTests; here only who may ask.
                Components.Schemas.DNSExplanation(
                    name: query.name, _type: query._type ?? "A", vpc: query.vpc, viewNote: "", clientZoneFoundBy: .unknown,
                    forwarded: false, candidates: [], authoritative: false, answer: [], authority: [], additional: [])
            })
        let socketPath = directory.file("control.sock")
        let (ready, continuation) = AsyncStream.makeStream(of: Int?.self)
        var logger = Logger(label: "zonelink.control.test")
        logger.logLevel = .critical
        let server = ControlServer(
            api: api, socketPath: socketPath, tcpPort: tcp ? 0 : nil, logger: logger,
            onReady: { port in
                continuation.yield(port)
                continuation.finish()
            })
        let task = Task { try await server.run() }
        var port: Int?? = nil
        for await bound in ready { port = bound }
        guard let port else {
            task.cancel()
            throw TestFailure("the control server did not start: \(String(describing: await task.result))")
        }
        return RunningServer(
            directory: directory, service: service, published: published, metrics: metrics, routes: api.routes, socketPath: socketPath,
            tcpPort: port, task: task)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
        directory.remove()
    }

    /// One request over the Unix socket.
    func request(_ method: String, _ path: String, token: String? = nil, body: String? = nil, headers: [String] = []) async throws -> HTTPReply {
        var lines = headers
        if let token { lines.append("Authorization: Bearer \(token)") }
        return try await HTTPReply.exchange(unixSocket: socketPath, method: method, path: path, headers: lines, body: body)
    }

    /// One request as a principal of the tests (nil: no Authorization header).
    func request(_ method: String, _ path: String, as principal: Principal?, json: some Encodable) async throws -> HTTPReply {
        let body = String(decoding: try JSONEncoder().encode(json), as: UTF8.self)
        return try await request(method, path, token: principal.map(token(of:)), body: body, headers: ["Content-Type: application/json"])
    }

    func request(_ method: String, _ path: String, as principal: Principal?) async throws -> HTTPReply {
        try await request(method, path, token: principal.map(token(of:)))
    }
}

func token(of principal: Principal) -> String {
    switch principal {
    case .operator: tokenOfOperator
    case .account(accountA): tokenOfConsumer
    case .account(accountB): tokenOfProvider
    default: tokenOfStranger
    }
}

// MARK: Requests

/// A raw exchange, run on a thread of its own so that blocking calls stay off the
/// concurrency pool that the server's handlers need.
typealias HTTPReply = RawHTTPClient.Response

extension RawHTTPClient.Response {
    static func exchange(
        unixSocket path: String, method: String, path target: String, headers: [String], body: String?
    ) async throws -> HTTPReply {
        try await exchange(RawHTTPClient(address: .unix(path: path)), method, target, headers, body)
    }

    static func exchange(tcpPort port: Int, method: String, path target: String, headers: [String], body: String?) async throws -> HTTPReply {
        try await exchange(RawHTTPClient(address: .tcp(port: port)), method, target, headers, body)
    }

    private static func exchange(_ client: RawHTTPClient, _ method: String, _ target: String, _ headers: [String], _ body: String?) async throws -> HTTPReply {
        let pairs = headers.map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
        }
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try client.send(method, target, body: body.map { Data($0.utf8) }, headers: pairs) })
            }.start()
        }
    }
}

/// Runs `body` against a fresh server, then stops it and removes its directory.
func withServer(
    yaml: String = infrastructureYAML, tcp: Bool = false,
    nat: @escaping @Sendable () async -> [Components.Schemas.NATRow] = { [] },
    health: @escaping @Sendable () async -> GatewayHealth = { GatewayHealth() },
    _ body: (RunningServer) async throws -> Void
) async throws {
    let server = try await RunningServer.start(yaml: yaml, tcp: tcp, nat: nat, health: health)
    do {
        try await body(server)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}
