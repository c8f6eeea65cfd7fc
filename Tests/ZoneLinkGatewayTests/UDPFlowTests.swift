// UDP sessions on real loopback sockets in the host namespace (no root needed): an ENI socket
// served by `UDPFlowHandler` on 127.77.9.1, an echo target on 127.77.9.2, NAT from 127.77.9.3.
import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import Testing
import ZoneLinkCore
import ZoneLinkNetwork
@testable import ZoneLinkGateway

@Suite("UDP sessions on loopback sockets")
struct UDPFlowTests {
    @Test("A NAT port taken by a socket outside ZoneLink: the session binds the pool's next port, and replies come back")
    func natPortTakenOutside() async throws {
        let natPorts: ClosedRange<UInt16> = 61_900...61_999
        let nat = IPv4Address("127.77.9.3")!
        // The squatter: a plain UDP socket on the first NAT port the pool hands out.
        let squatter = try Datagram.bind(IPv4Endpoint(address: nat, port: natPorts.lowerBound))
        defer { close(squatter) }
        let echo = try Datagram.bind(IPv4Endpoint(address: IPv4Address("127.77.9.2")!, port: 0))
        defer { close(echo) }
        Thread.detachNewThread {
            // Replies with the sender's address, so the test sees which NAT port was used.
            var buffer = [UInt8](repeating: 0, count: 2048)
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(echo, bytes.baseAddress, bytes.count, 0, $0, &length) }
                }
            }
            guard count > 0 else { return }
            Datagram.send(echo, Array("\(IPv4Endpoint(peer))".utf8), to: IPv4Endpoint(peer))
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let logger = Logger(label: "udp-test") { _ in SwiftLogNoOpLogHandler() }
        let flows = FlowRegistry(table: NATTable(portRange: natPorts))
        let target = IPv4Endpoint(address: IPv4Address("127.77.9.2")!, port: Datagram.localPort(echo))
        let route = loopbackRoute(
            .udp, eni: IPv4Address("127.77.9.1")!, nat: nat, target: target, flows: flows, admit: IPv4Prefix("127.0.0.0/8")!,
            logger: logger)
        let eniChannel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPFlowHandler(route: route)) }
            }
            .bind(to: route.current.listener.address.socketAddress).get()
        let eni = IPv4Endpoint(address: route.current.listener.address.address, port: UInt16(eniChannel.localAddress?.port ?? 0))

        let client = try Datagram.bind(IPv4Endpoint(address: IPv4Address("127.77.9.10")!, port: 0))
        defer { close(client) }
        Datagram.send(client, Array("ping".utf8), to: eni)
        let reply = Datagram.receive(client, timeout: 30)
        #expect(reply == "\(nat):\(natPorts.lowerBound + 1)",
                "the target should hear the session from the pool's next port \(natPorts.lowerBound + 1); it answered \(reply ?? "nothing")")
        #expect(flows.snapshot().map(\.flow.binding.nat) == [IPv4Endpoint(address: nat, port: natPorts.lowerBound + 1)])

        try await eniChannel.close()
        try await group.shutdownGracefully()
    }
}

/// Blocking UDP calls for the test's own sockets.
enum Datagram {
    static func bind(_ address: IPv4Endpoint) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard SocketCall.bind(fd, to: address) == 0 else {
            let error = SocketCall.errorText(errno)
            close(fd)
            throw Blocking.Failure(description: "bind UDP \(address): \(error)")
        }
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8], to target: IPv4Endpoint) {
        var address = target.sockaddr
        _ = bytes.withUnsafeBytes { payload in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, payload.baseAddress, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    static func receive(_ fd: Int32, timeout seconds: Int) -> String? {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
    }

    static func localPort(_ fd: Int32) -> UInt16 { Blocking.localPort(fd) }
}
