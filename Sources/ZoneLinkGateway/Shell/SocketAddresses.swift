import Glibc
import ZoneLinkCore
import ZoneLinkNetwork

/// The socket calls that take an address, with an `IPv4Endpoint`.
enum SocketCall {
    static func bind(_ fd: Int32, to endpoint: IPv4Endpoint) -> Int32 {
        var address = endpoint.sockaddr
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    static func connect(_ fd: Int32, to endpoint: IPv4Endpoint) -> Int32 {
        var address = endpoint.sockaddr
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// The address and port a socket is bound to (for an accepted one: where the client
    /// connected), or nil when the kernel will not say.
    static func localEndpoint(_ fd: Int32) -> IPv4Endpoint? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        return IPv4Endpoint(address)
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Closes with a reset (SO_LINGER 0), as a closed port or a refusing firewall would.
    static func reset(_ fd: Int32) {
        resetOnClose(fd)
        close(fd)
    }

    /// Makes the socket's close a reset (SO_LINGER 0) rather than a FIN.
    static func resetOnClose(_ fd: Int32) {
        var hard = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, socklen_t(MemoryLayout<linger>.size))
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
}
