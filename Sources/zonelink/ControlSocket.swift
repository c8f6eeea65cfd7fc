import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ZoneLinkCore
import ZoneLinkGateway

/// One row of `zonelink nat list --json`.
struct NATRow: Codable {
    var `protocol`: String
    var vpc: String
    var client: String
    var eni: String
    var nat: String
    var target: String
    var endpoint: String
    var ageSeconds: Double
    var bytesFromClient: Int
    var bytesFromTarget: Int

    init(_ flow: Flow, age: Duration) {
        self.protocol = flow.key.proto.rawValue
        self.vpc = flow.key.vpc
        self.client = flow.key.client.description
        self.eni = flow.key.eni.description
        self.nat = flow.binding.nat.description
        self.target = flow.binding.target.description
        self.endpoint = flow.endpoint
        self.ageSeconds = Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18
        self.bytesFromClient = flow.bytesFromClient
        self.bytesFromTarget = flow.bytesFromTarget
    }
}

/// The server's local control socket, `<state-dir>/control.sock`: read-only HTTP/1.1 for the
/// live state that the command line shows (`GET /v1/nat`). Only this host's users with access to
/// the state directory can reach it. The control-plane issue grows it into the full API.
struct ControlSocket: Service {
    let path: String
    let flows: FlowRegistry
    let group: MultiThreadedEventLoopGroup
    let logger: Logger

    func run() async throws {
        try? FileManager.default.removeItem(atPath: path)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { [flows] channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ControlRequestHandler(flows: flows))
                    }
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        logger.info("control socket", metadata: ["control.path": "\(path)"])
        try? await gracefulShutdown()
        try? await channel.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Answers one request per message on the control socket. Loop-bound, not Sendable.
final class ControlRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let flows: FlowRegistry
    private var path: String?

    init(flows: FlowRegistry) {
        self.flows = flows
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri : nil
        case .body:
            break
        case .end:
            let (status, body): (HTTPResponseStatus, Data)
            switch path {
            case "/v1/nat":
                let rows = flows.snapshot().map { NATRow($0.flow, age: $0.age) }
                (status, body) = (.ok, (try? JSONEncoder().encode(rows)) ?? Data("[]".utf8))
            default:
                (status, body) = (.notFound, Data(#"{"code":"not_found","message":"GET /v1/nat is the only resource"}"#.utf8))
            }
            var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.count)")])
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// Fetches `GET path` from a control socket: the body, or an error a user can act on.
func fetchFromControlSocket(_ socketPath: String, path: String) throws -> Data {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ControlClientError("cannot create a socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(socketPath.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw ControlClientError("socket path too long: \(socketPath)") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else {
        throw ControlClientError("cannot reach \(socketPath): \(String(cString: strerror(errno))) (is `zonelink serve` running with this --state-dir?)")
    }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: zonelink\r\nConnection: close\r\n\r\n".utf8)
    guard write(fd, request, request.count) == request.count else { throw ControlClientError("cannot send the request") }
    var response = Data()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count <= 0 { break }
        response.append(contentsOf: chunk[0..<count])
    }
    guard let split = response.range(of: Data("\r\n\r\n".utf8)) else { throw ControlClientError("the server's answer is not HTTP") }
    let head = String(decoding: response[..<split.lowerBound], as: UTF8.self)
    let body = response[split.upperBound...]
    guard head.hasPrefix("HTTP/1.1 200") else { throw ControlClientError("\(head.split(separator: "\r\n").first ?? ""): \(String(decoding: body, as: UTF8.self))") }
    return Data(body)
}

struct ControlClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
