import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import ZoneLinkCore
import ZoneLinkNetwork

/// Serves the API on the control socket and, when asked, on a loopback TCP port, until
/// graceful shutdown. A service of serve's `ServiceGroup`.
public struct ControlServer: Service {
    public let api: ControlAPI
    /// The Unix socket (`<state-dir>/control.sock`, `/run/zonelink/control.sock` under systemd).
    public let socketPath: String
    /// Mode of the socket file. Default 0660: its owner and group may connect (the bearer
    /// tokens then decide who may do what); others may not even reach the API.
    public let socketMode: mode_t
    /// A TCP port on `tcpHost` as well (0: any free port, reported to `onReady`).
    public let tcpPort: Int?
    public let tcpHost: String
    /// serve's event loops; nil: NIO's shared singleton group.
    let eventLoopGroup: (any EventLoopGroup)?
    let logger: Logger
    /// Called once every listener is bound, with the TCP port bound (nil without TCP).
    let onReady: @Sendable (_ tcpPort: Int?) async -> Void

    public init(
        api: ControlAPI, socketPath: String, socketMode: mode_t = 0o660, tcpPort: Int? = nil, tcpHost: String = "127.0.0.1",
        eventLoopGroup: (any EventLoopGroup)? = nil, logger: Logger = Logger(label: "zonelink.control"), onReady: @escaping @Sendable (_ tcpPort: Int?) async -> Void = { _ in }
    ) {
        self.api = api
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.tcpPort = tcpPort
        self.tcpHost = tcpHost
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onReady = onReady
    }

    public func run() async throws {
        let loops: EventLoopGroupProvider = eventLoopGroup.map { .shared($0) } ?? .singleton
        let ready = ReadyCounter(expected: tcpPort == nil ? 1 : 2, onReady: onReady)
        let server = httpServer()
        let socket = Application(
            responder: api, server: server,
            configuration: ApplicationConfiguration(address: .unixDomainSocket(path: socketPath), serverName: "zonelink"),
            onServerRunning: { [socketPath, socketMode, logger] _ in
                chmod(socketPath, socketMode)
                logger.info("control API", metadata: ["control.path": "\(socketPath)"])
                await ready.bound(tcpPort: nil)
            },
            eventLoopGroupProvider: loops, logger: logger)
        defer { try? FileManager.default.removeItem(atPath: socketPath) }
        guard let tcpPort else {
            try await socket.run()
            return
        }
        let tcp = Application(
            responder: api, server: server,
            configuration: ApplicationConfiguration(address: .hostname(tcpHost, port: tcpPort), serverName: "zonelink"),
            onServerRunning: { [tcpHost, logger] channel in
                let port = channel.localAddress?.port
                logger.info("control API", metadata: ["control.tcp": "\(tcpHost):\(port.map(String.init) ?? "?")"])
                await ready.bound(tcpPort: port)
            },
            eventLoopGroupProvider: loops, logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await socket.run() }
            group.addTask { try await tcp.run() }
        }
    }
}

extension ControlServer {
    /// HTTP/1.1 with Hummingbird's own idle timeout for kept-alive connections, and a fresh
    /// `ControlConnectionGuard` per connection for the connection count (both listeners
    /// share `api.connections`) and the head and body deadlines, which Hummingbird has no
    /// setting for.
    func httpServer() -> HTTPServerBuilder {
        let connections = api.connections
        let bounds = api.bounds
        let warnings = ThrottledWarnings(logger: logger)
        return .http1(configuration: HTTP1Channel.Configuration(
            additionalChannelHandlers: [ControlConnectionGuard(connections: connections, bounds: bounds, warnings: warnings)],
            idleTimeout: TimeAmount(bounds.idleTimeout)))
    }
}

/// Calls `onReady` once every listener is bound.
private actor ReadyCounter {
    private var remaining: Int
    private var tcpPort: Int?
    private let onReady: @Sendable (Int?) async -> Void

    init(expected: Int, onReady: @escaping @Sendable (Int?) async -> Void) {
        self.remaining = expected
        self.onReady = onReady
    }

    func bound(tcpPort: Int?) async {
        if let tcpPort { self.tcpPort = tcpPort }
        remaining -= 1
        if remaining == 0 { await onReady(self.tcpPort) }
    }
}
