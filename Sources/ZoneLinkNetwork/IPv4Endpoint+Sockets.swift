import Glibc
import NIOCore
import ZoneLinkCore

/// The one place an `IPv4Endpoint` becomes what the socket calls and NIO take, and back:
/// DNS workers, the forwarder, the relay and the UDP sessions all build these, and a byte
/// order slip in one copy would send packets to the wrong place.
extension IPv4Endpoint {
    /// As the socket calls want it (network byte order).
    public var sockaddr: sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = self.address.value.bigEndian
        return address
    }

    /// As NIO wants it, without formatting and parsing a string (the host name stays empty).
    public var socketAddress: SocketAddress {
        SocketAddress(sockaddr, host: "")
    }

    /// What a socket call (accept, recvfrom, getsockname) filled in.
    public init(_ address: sockaddr_in) {
        self.init(address: IPv4Address(UInt32(bigEndian: address.sin_addr.s_addr)), port: UInt16(bigEndian: address.sin_port))
    }
}

extension SocketAddress {
    /// The endpoint of an IPv4 address; nil for IPv6 and Unix domain addresses.
    public var ipv4Endpoint: IPv4Endpoint? {
        guard case .v4(let address) = self else { return nil }
        return IPv4Endpoint(address.address)
    }
}
