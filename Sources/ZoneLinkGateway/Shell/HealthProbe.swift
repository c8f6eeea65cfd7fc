import Glibc
import NIOCore
import NIOPosix
import ZoneLinkCore
import ZoneLinkNetwork

/// One probe of one backend, from inside the provider's namespace: a TCP connect, or for HTTP
/// checks a `GET` whose status line must carry the expected code. Succeeds or fails within
/// the check's timeout. A probe that cannot get a socket for want of descriptors or buffers
/// is inconclusive, never a failure: the shortage is ZoneLink's, not the backend's.
///
/// Backends of a service with `proxyProtocol: v2` expect every connection to start with a
/// PROXY v2 header, so their probes start with a LOCAL one (`ProxyHeader.local`): a TCP check
/// connects, writes it and closes; an HTTP check writes it just before its request. Others
/// get no header, ever.
enum HealthProbe {
    /// errno values that say the probing process, not the backend, is short of something.
    static let ownShortages: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    static func outcome(of error: Error) -> ProbeResult {
        if let error = error as? IOError, ownShortages.contains(error.errnoCode) { return .inconclusive }
        if let error = error as? NIOConnectionError,
           error.connectionErrors.contains(where: { outcome(of: $0.error) == .inconclusive }) {
            return .inconclusive
        }
        return .failure
    }

    static func run(
        _ check: HealthCheck, backend: IPv4Endpoint, proxyProtocol: Bool = false, provider: NetworkNamespace, on loop: EventLoop
    ) -> EventLoopFuture<ProbeResult> {
        let preamble = proxyProtocol ? ProxyHeader.local : []
        let timeout = TimeAmount(check.timeout)
        let connected = provider.start(on: loop) {
            ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .connect(to: try SocketAddress(ipAddress: backend.address.description, port: Int(backend.port)))
        }
        let result: EventLoopFuture<ProbeResult> = connected.flatMap { channel in
            switch check.kind {
            case .tcp:
                guard !preamble.isEmpty else {
                    channel.close(promise: nil)
                    return loop.makeSucceededFuture(.success)
                }
                // Connected is healthy; the header only spares the backend a bad connection.
                return channel.writeAndFlush(ByteBuffer(bytes: preamble)).always { _ in channel.close(promise: nil) }
                    .map { .success }.recover { _ in .success }
            case .http(let path, let expectStatus):
                let status = loop.makePromise(of: Int.self)
                let request = "GET \(path) HTTP/1.0\r\nHost: \(backend.address)\r\nUser-Agent: zonelink-health\r\n\r\n"
                do {
                    try channel.pipeline.syncOperations.addHandler(StatusLineHandler(status: status))
                } catch {
                    status.fail(error)
                }
                channel.writeAndFlush(ByteBuffer(bytes: preamble + Array(request.utf8)), promise: nil)
                loop.scheduleTask(in: timeout) { status.fail(ChannelError.connectTimeout(timeout)) }
                return status.futureResult.always { _ in channel.close(promise: nil) }
                    .map { $0 == expectStatus ? .success : .failure }
            }
        }
        return result.recover { outcome(of: $0) }
    }
}

/// Reads an HTTP response's status line (`HTTP/1.x CODE …`) and reports the code.
final class StatusLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let status: EventLoopPromise<Int>
    private var received = ByteBuffer()

    init(status: EventLoopPromise<Int>) {
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        let text = String(buffer: received)
        guard let end = text.firstIndex(of: "\r\n") ?? (received.readableBytes > 512 ? text.endIndex : nil) else { return }
        let fields = text[..<end].split(separator: " ")
        if fields.count >= 2, fields[0].hasPrefix("HTTP/"), let code = Int(fields[1]) {
            status.succeed(code)
        } else {
            status.fail(ChannelError.inputClosed)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        status.fail(ChannelError.inputClosed)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        status.fail(error)
        context.close(promise: nil)
    }
}
