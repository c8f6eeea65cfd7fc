import Glibc
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// A TCP listening socket on one ENI port, made inside its VPC's namespace and accepted from by
/// every relay worker. `id` tells workers' tables apart; it is never reused.
final class ListeningSocket: Sendable {
    let id: Int
    let fd: Int32
    let route: RouteBox
    /// Where the socket is bound: the ENI's address and port (the kernel's pick when the port
    /// asked for was 0). An accepted connection's destination is always this, so nothing
    /// asks the kernel per connection (the PROXY v2 header's destination).
    let address: IPv4Endpoint

    private static let nextID = Atomic<Int>(0)

    private init(fd: Int32, route: RouteBox, address: IPv4Endpoint) {
        self.id = Self.nextID.add(1, ordering: .relaxed).newValue
        self.fd = fd
        self.route = route
        self.address = address
    }

    /// Binds `route`'s ENI address (SO_REUSEADDR, backlog 1024, non-blocking) in `namespace`.
    ///
    /// TCP_NODELAY is set here, once, rather than on every accepted socket: Linux copies it to
    /// the sockets `accept4` returns (`ListeningSocketTests` checks that), which saves a
    /// setsockopt per relayed connection.
    static func open(_ route: RouteBox, in namespace: NetworkNamespace) async throws -> ListeningSocket {
        let address = route.current.listener.address
        let fd = try await namespace.run { () throws(ListenError) -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw ListenError(errno: errno) }
            SocketCall.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            SocketCall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            guard SocketCall.bind(fd, to: address) == 0, listen(fd, 1024) == 0 else {
                let code = errno
                Glibc.close(fd)
                throw ListenError(errno: code)
            }
            return fd
        }
        return ListeningSocket(fd: fd, route: route, address: SocketCall.localEndpoint(fd) ?? address)
    }

    /// Closes the socket. Only once no worker watches it any more (`TCPRelay.unlisten`).
    func close() { _ = Glibc.close(fd) }
}

struct ListenError: Error, CustomStringConvertible {
    var errno: Int32
    var description: String { SocketCall.errorText(errno) }
}
