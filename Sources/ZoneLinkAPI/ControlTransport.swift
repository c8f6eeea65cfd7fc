import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOPosix
import OpenAPIRuntime

/// Where the control API listens, as `--server` names it: the control socket (a path, or
/// `unix:PATH`), or `http://HOST:PORT` / `HOST:PORT` on loopback.
public enum ControlServerAddress: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    /// An IPv4 address (or `localhost`) and port.
    case tcp(host: String, port: Int)

    /// Reads `--server` as a user writes it.
    public init(_ server: String) throws {
        if server.hasPrefix("unix:") {
            self = .unix(path: String(server.dropFirst(5)))
            return
        }
        var rest = Substring(server)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard server.hasPrefix("http://") || (!server.contains("/") && rest.contains(":")) else {
            self = .unix(path: server)
            return
        }
        let parts = rest.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw ControlTransportError("'\(server)' is not a server: give the control socket's path or http://HOST:PORT")
        }
        self = .tcp(host: String(parts[0]), port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "http://\(host):\(port)"
        }
    }
}

/// The generated client's transport: one HTTP/1.1 exchange per connection, over the control
/// socket or loopback TCP (the API's two listeners), with SwiftNIO.
///
/// A command line sends a handful of small requests, so a connection per request costs
/// nothing worth pooling, and `Connection: close` keeps the server's idle limits out of the
/// way. The answer is read whole, up to `maxResponseSize`, and within `timeout`: a server
/// that stops answering or answers without end gives a clear error, never a hang.
public struct ControlTransport: ClientTransport {
    public let address: ControlServerAddress
    /// The whole exchange, connecting included.
    public var timeout: Duration
    /// The largest answer read (the NAT table of a busy gateway is the largest there is).
    public var maxResponseSize: Int

    public init(address: ControlServerAddress, timeout: Duration = .seconds(60), maxResponseSize: Int = 64 << 20) {
        self.address = address
        self.timeout = timeout
        self.maxResponseSize = maxResponseSize
    }

    public func send(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var head = request
        head.path = Self.join(baseURL.path, request.path ?? "/")
        head.authority = "zonelink"
        head.headerFields[.connection] = "close"
        var payload: ByteBuffer?
        if let body {
            // The requests this client makes are JSON objects of a few hundred bytes.
            let bytes = try await [UInt8](collecting: body, upTo: 1 << 20)
            payload = ByteBuffer(bytes: bytes)
            head.headerFields[.contentLength] = String(bytes.count)
        }
        if Self.asksForStream(head) { return try await stream(head) }
        let channel = try await connect()
        let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { channel.channel.close(promise: nil) }
        defer { deadline.cancel() }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                // One write for the whole request: the server may answer a body-less request on
                // its head alone and close (`Connection: close`); a separate write of the end
                // after that close would fail the exchange although the answer is on its way.
                try await outbound.write(contentsOf: [.head(head)] + (payload.map { [.body($0)] } ?? []) + [.end(nil)])
                var response: HTTPResponse?
                var collected = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let received):
                        response = received
                    case .body(var chunk):
                        guard collected.readableBytes + chunk.readableBytes <= maxResponseSize else {
                            throw ControlTransportError("the answer from \(address) is larger than \(maxResponseSize) bytes")
                        }
                        collected.writeBuffer(&chunk)
                    case .end:
                        guard let response else { break }
                        return (response, HTTPBody(Array(collected.readableBytesView)))
                    }
                }
                throw ControlTransportError(
                    "\(address) closed the connection before a complete answer (no answer within \(timeout)?)")
            }
        } catch let error as ControlTransportError {
            throw error
        } catch {
            throw ControlTransportError("the exchange with \(address) failed: \(error)")
        }
    }

    private typealias Channel = NIOAsyncChannel<HTTPResponsePart, HTTPRequestPart>

    /// A request for server-sent events (`Accept: text/event-stream` alone): its answer has
    /// no end, so it is handed on as it arrives rather than read whole.
    static func asksForStream(_ request: HTTPRequest) -> Bool {
        let accept = request.headerFields[.accept] ?? ""
        return accept.contains("text/event-stream") && !accept.contains("json")
    }

    /// Sends a body-less request and returns once the answer's head is in (within `timeout`),
    /// with a body that yields each chunk as it arrives, for as long as the server sends.
    private func stream(_ head: HTTPRequest) async throws -> (HTTPResponse, HTTPBody?) {
        let channel = try await connect()
        let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { channel.channel.close(promise: nil) }
        let (chunks, chunk) = AsyncThrowingStream<ArraySlice<UInt8>, any Error>.makeStream()
        let address = address
        let response: HTTPResponse = try await withCheckedThrowingContinuation { answered in
            let reader = Task {
                var waiting = true
                do {
                    try await channel.executeThenClose { inbound, outbound in
                        try await outbound.write(contentsOf: [.head(head), .end(nil)])
                        for try await part in inbound {
                            switch part {
                            case .head(let received):
                                guard waiting else { continue }
                                waiting = false
                                deadline.cancel()
                                answered.resume(returning: received)
                            case .body(let bytes):
                                chunk.yield(ArraySlice(bytes.readableBytesView))
                            case .end:
                                break
                            }
                        }
                    }
                    if waiting { answered.resume(throwing: ControlTransportError("\(address) closed the connection before answering")) }
                    chunk.finish()
                } catch {
                    if waiting { answered.resume(throwing: ControlTransportError("the exchange with \(address) failed: \(error)")) }
                    chunk.finish(throwing: error)
                }
            }
            chunk.onTermination = { _ in reader.cancel() }
        }
        return (response, HTTPBody(chunks, length: .unknown, iterationBehavior: .single))
    }

    private func connect() async throws -> Channel {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(timeout))
        let pipeline: @Sendable (any NIOCore.Channel) -> EventLoopFuture<Channel> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPClientCodec())
                return try Channel(wrappingChannelSynchronously: channel)
            }
        }
        do {
            switch address {
            case .unix(let path):
                return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: pipeline)
            case .tcp(let host, let port):
                return try await bootstrap.connect(host: host == "localhost" ? "127.0.0.1" : host, port: port, channelInitializer: pipeline)
            }
        } catch {
            let cause = (error as? NIOConnectionError)?.connectionErrors.first?.error ?? error
            let reason = (cause as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(cause)"
            switch address {
            case .unix(let path):
                throw ControlTransportError("cannot reach \(path): \(reason) (is `zonelink serve` running with this --state-dir?)")
            case .tcp(let host, let port):
                throw ControlTransportError("cannot reach \(host):\(port): \(reason)")
            }
        }
    }

    /// The base URL's path (none for `http://zonelink`) and the operation's path.
    static func join(_ base: String, _ path: String) -> String {
        let prefix = base.hasSuffix("/") ? String(base.dropLast()) : base
        return prefix + path
    }
}

/// The control API could not be reached, or did not answer in HTTP.
public struct ControlTransportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
