import NIOCore
import NIOPosix
import Logging
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// Forwarding is only for a listener's own clients: never an open resolver.
@Suite("Forwarding only for own clients")
struct OpenResolverTests {
    func outcome(from source: String, name: String = "www.example.org", vpc: String? = "vpc-1") throws -> Responder.Outcome {
        let group = MultiThreadedEventLoopGroup.singleton
        let forwarder = Forwarder(upstreams: [IPv4Endpoint("127.0.0.1:9")!], group: group, logger: Logger(label: "test"))
        let responder = Responder(engine: try makeEngine(), forwarder: forwarder)
        var output = ByteBuffer()
        return queryMessage(name, .a).withUnsafeBytes {
            responder.respond(to: $0, listener: ListenerContext(vpc: vpc, zone: nil), source: IPv4Address(source), transport: .udp, into: &output)
        }
    }

    @Test func loopbackAndTheListenersVPCAreForwarded() throws {
        for source in ["127.0.0.1", "10.10.1.7", "10.10.200.1"] {
            guard case .forward = try outcome(from: source) else {
                Issue.record("\(source) should be forwarded")
                continue
            }
        }
    }

    @Test func othersAreRefused() throws {
        for source in ["10.97.0.1", "192.168.24.200", "8.8.8.8"] {
            var output = ByteBuffer()
            let group = MultiThreadedEventLoopGroup.singleton
            let forwarder = Forwarder(upstreams: [IPv4Endpoint("127.0.0.1:9")!], group: group, logger: Logger(label: "test"))
            let responder = Responder(engine: try makeEngine(), forwarder: forwarder)
            let result = queryMessage("www.example.org", .a).withUnsafeBytes {
                responder.respond(to: $0, listener: ListenerContext(vpc: "vpc-1", zone: nil), source: IPv4Address(source), transport: .udp, into: &output)
            }
            guard case .answered = result else {
                Issue.record("\(source) must not be forwarded")
                continue
            }
            #expect(decode(Array(output.readableBytesView))?.rcode == 5, "\(source) gets REFUSED")
        }
    }

    @Test func servedNamesAreAnsweredNotForwarded() throws {
        guard case .answered = try outcome(from: "127.0.0.1", name: "www.example.internal") else {
            Issue.record("a served name is answered by ZoneLink itself")
            return
        }
    }
}
