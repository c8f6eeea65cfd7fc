import CZoneLinkSystem
import Glibc
import Logging
import Synchronization

/// The relay's kernel shortcut for long-lived TCP flows (`gateway.spliceAfterExchanges`).
///
/// A user-space relay pays, for every request of a kept-alive connection, a wake-up, a read and
/// a send each way: about what HAProxy pays, whatever the relay does (io_uring batches the
/// calls but not the work; `Benchmarks/gateway/README.md`). Once a flow has shown itself
/// long-lived, both its sockets join two BPF sockhashes, and a stream-verdict program
/// (`splice.c`) redirects whatever a socket receives to its peer inside the kernel: the relay
/// is no longer woken for the flow's bytes, only for its ends. Short flows are never spliced:
/// joining and leaving the maps costs more than copying one exchange.
///
/// What the kernel needs the relay to get right, each seen on Linux 6.18:
/// - A socket runs the verdict as soon as it is in the verdict map, so its peer must already
///   be a redirect target: two maps, targets first.
/// - Bytes that arrived before a socket joined wait in its queue until more arrive: setting
///   `SO_RCVLOWAT` (to its default, 1) makes TCP run the verdict on them at once, in order.
/// - Redirected bytes are sent by a kworker, later: when a FIN comes in, the peer is shut for
///   writing only once it has been written every byte received before the FIN (TCP_INFO's
///   counts; `RelayFlow.settleSplicedEnd`), or those bytes would be lost.
/// - A socket whose FIN is in already cannot join (`EOPNOTSUPP`): its input stays copied.
///
/// Keys are socket cookies, unique on the host: tuples are not, since consumer VPCs may use the
/// same addresses. Sockets leave both maps when they close.
///
/// The maps and the program are made when the first flow is due (`RelaySplicingLoader`), not at
/// start: with splicing off (the default) ZoneLink makes no BPF object at all.
final class RelaySplicing: Sendable {
    /// Sockets each map holds (two per spliced flow): memory for the buckets is taken when the
    /// maps are made (16 bytes each, 2 MiB a map), a socket's entry when it joins. Flows beyond
    /// that stay copied.
    static let capacity: UInt32 = 1 << 17

    private let targets: Int32
    private let verdicts: Int32
    private let splicedCount = Atomic<Int>(0)
    private let finWaitCount = Atomic<Int>(0)

    private init(targets: Int32, verdicts: Int32) {
        self.targets = targets
        self.verdicts = verdicts
    }

    deinit {
        close(targets)
        close(verdicts)
    }

    /// The maps and the program, or nil (logged once) when this kernel or this process's
    /// privileges do not allow them (CAP_BPF and CAP_NET_ADMIN, or root): flows are then copied.
    static func open(logger: Logger) -> RelaySplicing? {
        var targets: Int32 = -1, verdicts: Int32 = -1
        var log = [CChar](repeating: 0, count: 4096)
        let result = zl_splice_open(&targets, &verdicts, capacity, &log, UInt32(log.count))
        guard result == 0 else {
            let verifier = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let detail = verifier.isEmpty ? "" : " (verifier: \(verifier))"
            logger.notice("""
                TCP flows are not spliced into the kernel: \(SocketCall.errorText(-result))\(detail); every flow's bytes \
                are copied (gateway.spliceAfterExchanges needs CAP_BPF and CAP_NET_ADMIN)
                """)
            return nil
        }
        return RelaySplicing(targets: targets, verdicts: verdicts)
    }

    /// Flows spliced since the relay started (each input of a flow that joined counts once).
    var splicedFlows: Int { splicedCount.load(ordering: .relaxed) }
    /// Checks of a spliced input's FIN that found bytes before it still in the kernel.
    var finWaits: Int { finWaitCount.load(ordering: .relaxed) }

    func noteFinWait() { finWaitCount.add(1, ordering: .relaxed) }

    /// Hands `flow`'s bytes to the kernel: both sockets as each other's targets, then each into
    /// the verdict map (the provider side first: it speaks once the client's bytes reach it).
    /// A socket that cannot join keeps being copied; false when neither joined.
    func splice(_ flow: RelayFlow) -> Bool {
        var clientCookie: UInt64 = 0, providerCookie: UInt64 = 0
        guard zl_socket_cookie(flow.client.fd, &clientCookie) == 0, zl_socket_cookie(flow.provider.fd, &providerCookie) == 0,
              zl_sockhash_put(targets, clientCookie, flow.provider.fd) == 0
        else { return false }
        guard zl_sockhash_put(targets, providerCookie, flow.client.fd) == 0 else {
            _ = zl_sockhash_delete(targets, clientCookie)
            return false
        }
        // What was written to each socket so far, before the kernel writes anything to either
        // (what was read from each stays in `read`, which no longer grows once spliced).
        guard zl_tcp_counts(flow.client.fd, nil, &flow.client.writtenBeforeSplice) == 0,
              zl_tcp_counts(flow.provider.fd, nil, &flow.provider.writtenBeforeSplice) == 0
        else { return false }

        let providerJoined = zl_sockhash_put(verdicts, providerCookie, flow.provider.fd) == 0
        let clientJoined = zl_sockhash_put(verdicts, clientCookie, flow.client.fd) == 0
        if providerJoined {
            flow.provider.spliced = true
            SocketCall.setOption(flow.provider.fd, SOL_SOCKET, SO_RCVLOWAT, 1)
        }
        if clientJoined {
            flow.client.spliced = true
            SocketCall.setOption(flow.client.fd, SOL_SOCKET, SO_RCVLOWAT, 1)
        }
        guard providerJoined || clientJoined else { return false }
        splicedCount.add(1, ordering: .relaxed)
        return true
    }
}

/// Makes `RelaySplicing` once, when a worker first has a flow to splice, and keeps the result
/// (nil when the kernel or privileges refuse, logged that once) for every worker.
final class RelaySplicingLoader: Sendable {
    private enum State { case untried, loaded(RelaySplicing?) }
    private let state = Mutex(State.untried)
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// The maps, made on the first call; nil when they cannot be.
    func maps() -> RelaySplicing? {
        state.withLock { state in
            if case .loaded(let splicing) = state { return splicing }
            let splicing = RelaySplicing.open(logger: logger)
            state = .loaded(splicing)
            return splicing
        }
    }

    /// The maps if a call made them already (nil: not needed yet, or refused).
    var loaded: RelaySplicing? {
        state.withLock { state in
            if case .loaded(let splicing) = state { return splicing }
            return nil
        }
    }
}

