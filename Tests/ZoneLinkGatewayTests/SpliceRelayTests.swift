import Foundation
import Glibc
import Logging
import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

/// Whether this process may splice (BPF sockhashes and a stream-verdict program need CAP_BPF
/// and CAP_NET_ADMIN, as CI's root has): the tests below are skipped, and say so, otherwise.
private let splicingAvailable = RelaySplicing.open(logger: Logger(label: "splice-probe") { _ in SwiftLogNoOpLogHandler() }) != nil

/// A conversation of 8-byte pings and pongs, then bulk both ways, as a target answers it.
private enum Conversation {
    static let upload = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
    static let download = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }

    /// The target's side of `exchanges` pings; false when the connection ends first.
    static func pong(_ connection: Int32, exchanges: Int) -> Bool {
        for _ in 0..<exchanges {
            guard let ping = Blocking.readExactly(connection, 8) else { return false }
            Blocking.sendAll(connection, Array("pong".utf8) + ping.suffix(4))
        }
        return true
    }

    /// `exchanges` pongs, an echo of one 1 MiB block, then reads to the client's FIN and
    /// answers with `download`; returns what it read after the block.
    static func serve(_ connection: Int32, exchanges: Int) -> [UInt8] {
        guard pong(connection, exchanges: exchanges), let block = Blocking.readExactly(connection, 1 << 20) else { return [] }
        Blocking.sendAll(connection, Array(block.suffix(8)))
        let rest = Blocking.readToEOF(connection).bytes
        Blocking.sendAll(connection, download)
        return rest
    }

    /// The client's side of `exchanges` pings; false on a wrong or missing pong.
    static func ping(_ client: Int32, exchanges: Int) -> Bool {
        for i in 0..<exchanges {
            let tag = Array(String(format: "%04d", i).utf8)
            Blocking.sendAll(client, Array("ping".utf8) + tag)
            guard Blocking.readExactly(client, 8) == Array("pong".utf8) + tag else { return false }
        }
        return true
    }
}

@Suite("Splicing long-lived flows into the kernel (gateway.spliceAfterExchanges)", .enabled(
    if: splicingAvailable, "needs CAP_BPF and CAP_NET_ADMIN (root) for BPF sockhashes: SKIPPED, splicing untested"))
struct SpliceRelayTests {
    @Test("After its exchanges a flow is spliced: bytes both ways arrive whole and in order, the NAT table counts them, each FIN follows the last byte")
    func splicedFlowCarriesEverything() async throws {
        let exchanges = 10
        let target = try TargetServer(address: "127.77.20.2") { Conversation.serve($0, exchanges: exchanges) }
        let rig = try await RelayRig(subnet: 20, target: target.endpoint, spliceAfterExchanges: 2)
        let splicing = try #require(rig.relay.splicing.maps())
        let client = try Blocking.connect(from: "127.77.20.10", to: rig.eni)
        defer { close(client) }
        #expect(try await onThread { Conversation.ping(client, exchanges: exchanges) }, "every ping should get its pong")
        #expect(splicing.splicedFlows == 1, "the flow should be spliced after 2 exchanges")

        // Through the kernel now: a block and its echo, counted in the NAT table (reported
        // once a second from TCP_INFO).
        let block = [UInt8](repeating: 0x5A, count: 1 << 20)
        let echoed = try await onThread { () -> [UInt8]? in
            Blocking.sendAll(client, block)
            return Blocking.readExactly(client, 8)
        }
        #expect(echoed == Array(block.suffix(8)))
        let fromClient = exchanges * 8 + block.count, fromTarget = exchanges * 8 + 8
        let counted = await waitUntil {
            rig.flows.snapshot().first.map { $0.flow.bytesFromClient == fromClient && $0.flow.bytesFromTarget == fromTarget } ?? false
        }
        #expect(counted, "NAT table: \(rig.flows.snapshot().map { ($0.flow.bytesFromClient, $0.flow.bytesFromTarget) }), expected (\(fromClient), \(fromTarget))")

        // 8 MiB up, the client's FIN, 8 MiB down, the target's FIN.
        let downloaded = try await onThread { () -> (bytes: [UInt8], error: Int32?) in
            Blocking.sendAll(client, Conversation.upload)
            shutdown(client, Int32(SHUT_WR))
            return Blocking.readToEOF(client)
        }
        #expect(downloaded.error == nil && downloaded.bytes.count == Conversation.download.count
                && downloaded.bytes == Conversation.download,
                "the client should read the 8 MiB download whole, then EOF; read \(downloaded.bytes.count) bytes, error \(downloaded.error.map(SocketCall.errorText) ?? "none")")
        let uploaded = try #require(await target.received().first)
        #expect(uploaded.count == Conversation.upload.count && uploaded == Conversation.upload,
                "the target should read the 8 MiB upload whole before the client's FIN; read \(uploaded.count) bytes")
        #expect(await rig.tableEmpties(), "both FINs passed: the flow should leave the NAT table")
        await rig.stop()
        target.stop()
    }

    @Test("A spliced flow closed from outside (idle expiry, endpoint gone) ends on both sides")
    func splicedFlowClosedFromOutside() async throws {
        let target = try TargetServer(address: "127.77.21.2") { connection in
            Conversation.pong(connection, exchanges: 4) ? Blocking.readToEOF(connection).bytes : []
        }
        let rig = try await RelayRig(subnet: 21, target: target.endpoint, spliceAfterExchanges: 1)
        let client = try Blocking.connect(from: "127.77.21.10", to: rig.eni)
        defer { close(client) }
        #expect(try await onThread { Conversation.ping(client, exchanges: 4) })
        #expect(rig.relay.splicing.loaded?.splicedFlows == 1)
        rig.flows.close { _ in true }
        let answer = try await onThread { Blocking.readToEOF(client) }
        #expect(answer.bytes.isEmpty, "the client should see its connection end")
        #expect(await target.received().count == 1, "the target should see its connection end")
        #expect(await rig.tableEmpties())
        await rig.stop()
        target.stop()
    }

    @Test("A flow under a bandwidth cap is never spliced: the cap needs its bytes in user space")
    func cappedFlowStaysCopied() async throws {
        let target = try TargetServer(address: "127.77.22.2") { connection in
            Conversation.pong(connection, exchanges: 6) ? Blocking.readToEOF(connection).bytes : []
        }
        let cap = ConnectionBandwidth(megabitsPerSecond: 100)
        let rig = try await RelayRig(subnet: 22, target: target.endpoint, bandwidth: cap, spliceAfterExchanges: 1)
        let client = try Blocking.connect(from: "127.77.22.10", to: rig.eni)
        #expect(try await onThread { Conversation.ping(client, exchanges: 6) })
        shutdown(client, Int32(SHUT_WR))
        _ = try await onThread { Blocking.readToEOF(client) }
        close(client)
        #expect((rig.relay.splicing.loaded?.splicedFlows ?? 0) == 0, "a capped flow was spliced")
        #expect(await rig.tableEmpties())
        await rig.stop()
        target.stop()
    }
}

@Suite("Splicing: a FIN that waits for the kernel", .enabled(
    if: splicingAvailable, "needs CAP_BPF and CAP_NET_ADMIN (root) for BPF sockhashes: SKIPPED, splicing untested"))
struct SpliceFinWaitTests {
    @Test("A client that stops reading while the target's answer and FIN are in: the FIN waits for the bytes, checked again and again; every byte arrives once it reads")
    func finWaitsForSlowReader() async throws {
        let size = 6 << 20
        let answer = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let target = try TargetServer(address: "127.77.23.2") { connection in
            guard Conversation.pong(connection, exchanges: 4), Blocking.readExactly(connection, 4) != nil else { return [] }
            Blocking.sendAll(connection, answer)
            return []
        }
        let rig = try await RelayRig(subnet: 23, target: target.endpoint, spliceAfterExchanges: 1)
        let splicing = try #require(rig.relay.splicing.maps())
        // A small receive buffer, so that the answer cannot all be in the client's socket.
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(client) }
        SocketCall.setOption(client, SOL_SOCKET, SO_RCVBUF, 16_384)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(SocketCall.bind(client, to: IPv4Endpoint(address: IPv4Address("127.77.23.10")!, port: 0)) == 0)
        #expect(SocketCall.connect(client, to: rig.eni) == 0)
        #expect(try await onThread { Conversation.ping(client, exchanges: 4) })
        #expect(splicing.splicedFlows == 1)
        Blocking.sendAll(client, Array("big\n".utf8))
        // The target has sent everything and its FIN once its connection ends.
        #expect(await waitUntil { target.finished.count == 1 }, "the target should have written the whole answer and closed")
        #expect(await waitUntil { splicing.finWaits > 0 },
                "the relay should have seen the target's FIN while bytes before it were still in the kernel")
        // While the reader stalls the FIN keeps waiting, checked again (ever more rarely:
        // `kernelCheckDelay`, tested below) until the kernel has written everything.
        #expect(await waitUntil { splicing.finWaits >= 6 }, "the waiting FIN should be checked again: \(splicing.finWaits) checks")
        let read = try await onThread { Blocking.readToEOF(client) }
        #expect(read.error == nil && read.bytes.count == size && read.bytes == answer,
                "once the client reads, the whole answer and then the FIN should arrive; read \(read.bytes.count) of \(size) bytes, error \(read.error.map(SocketCall.errorText) ?? "none")")
        shutdown(client, Int32(SHUT_WR))
        #expect(await rig.tableEmpties())
        await rig.stop()
        target.stop()
    }
}

@Suite("Splicing: how often a waiting FIN is checked")
struct KernelCheckDelayTests {
    @Test("1 ms, doubled after each check, at most a second: a peer that stops reading costs a check a second, not a thousand")
    func backsOff() {
        var delays: [Duration] = []
        var delay: Duration?
        for _ in 0..<14 {
            delay = RelayWorker.kernelCheckDelay(after: delay)
            delays.append(delay!)
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map { Duration.milliseconds($0) }
                + Array(repeating: .seconds(1), count: 4), "\(delays)")
    }
}

