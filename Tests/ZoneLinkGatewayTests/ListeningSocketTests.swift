// The ENI listening socket on a loopback address in the host namespace (no root needed).
import CZoneLinkSystem
import Glibc
import Logging
import Testing
import ZoneLinkCore
import ZoneLinkNetwork
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

@Suite("ENI listening socket")
struct ListeningSocketTests {
    @Test("An accepted connection has TCP_NODELAY from its listener, and the listener knows its bound port")
    func acceptedSocketsInheritNoDelay() async throws {
        // The relay sets TCP_NODELAY on the listener only and relies on Linux copying it to each
        // accepted socket; should a kernel stop doing so, small relayed writes would wait on
        // Nagle's algorithm.
        let logger = Logger(label: "listener-test") { _ in SwiftLogNoOpLogHandler() }
        let flows = FlowRegistry(table: NATTable(portRange: 61_600...61_699))
        let route = loopbackRoute(
            .tcp, eni: IPv4Address("127.77.16.1")!, nat: IPv4Address("127.77.16.3")!, target: IPv4Endpoint("127.77.16.2:9")!,
            flows: flows, admit: IPv4Prefix("127.0.0.0/8")!, logger: logger)
        let listening = try await ListeningSocket.open(route, in: .host)
        defer { listening.close() }
        #expect(listening.address == IPv4Endpoint(address: IPv4Address("127.77.16.1")!, port: Blocking.localPort(listening.fd)),
                "the listener's address should be where it is bound; got \(listening.address)")
        let client = try Blocking.connect(from: "127.77.16.10", to: listening.address)
        defer { close(client) }
        var peer = sockaddr_in()
        var accepted: Int32 = -1
        // The connection is in the backlog once connect returned; a non-blocking accept may
        // still find it a moment later on a busy machine.
        _ = await waitUntil {
            accepted = zl_accept(listening.fd, &peer)
            return accepted >= 0
        }
        try #require(accepted >= 0, "no connection to accept: \(SocketCall.errorText(errno))")
        defer { close(accepted) }
        var noDelay: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(accepted, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length) == 0)
        #expect(noDelay != 0, "the accepted socket should have TCP_NODELAY from its listener")
    }
}
