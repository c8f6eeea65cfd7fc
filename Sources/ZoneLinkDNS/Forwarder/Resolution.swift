import Logging
import NIOCore

/// Resolving one question through the upstreams, for every client waiting on it.
///
/// Lives on one event loop and is touched only there (`assumeIsolated` callbacks), so it needs
/// no lock. Tries the upstreams in turn, starting with the one that answered last: each attempt
/// waits at most `attemptTimeout`; a TC answer is asked again of the same upstream over TCP;
/// an upstream that is unreachable or answers uselessly (SERVFAIL, REFUSED, …) is not asked
/// again, one that timed out is, when the round comes back to it and time remains. It ends
/// with the first usable answer, or with none (SERVFAIL for the clients) when every upstream
/// has failed or the overall deadline passes: a timer at the deadline ends it whatever the
/// attempts are doing.
final class Resolution {
    private let forwarder: Forwarder
    private let key: ForwardKey
    private let loop: any EventLoop
    private let deadline: NIODeadline
    /// Upstream indices, in the order to try them.
    private let order: [Int]
    private var position = 0
    private var failed: Set<Int> = []
    private var pending: EventLoopPromise<ExchangeOutcome>?
    private var timer: Scheduled<Void>?
    private var finished = false

    init(forwarder: Forwarder, key: ForwardKey, loop: any EventLoop, deadline: NIODeadline, order: [Int]) {
        self.forwarder = forwarder
        self.key = key
        self.loop = loop
        self.deadline = deadline
        self.order = order
    }

    func start() {
        loop.preconditionInEventLoop()
        timer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            forwarder.logger.debug("forward deadline passed", metadata: ["dns.question": "\(key)"])
            finish(nil)
        }
        attempt()
    }

    /// Asks the next upstream, or ends when none is left or time is up.
    private func attempt() {
        guard !finished else { return }
        guard NIODeadline.now() < deadline, let upstream = nextUpstream() else {
            finish(nil)
            return
        }
        exchange(with: upstream, overTCP: false)
    }

    private func nextUpstream() -> Int? {
        for _ in 0..<order.count {
            let candidate = order[position % order.count]
            position += 1
            if !failed.contains(candidate) { return candidate }
        }
        return nil
    }

    private func exchange(with upstream: Int, overTCP: Bool) {
        let attemptDeadline = min(NIODeadline.now() + forwarder.attemptTimeout, deadline)
        let promise = UpstreamExchange.start(
            to: forwarder.upstreams[upstream], key: key, overTCP: overTCP, deadline: attemptDeadline,
            maxTTL: forwarder.settings.maxTTL, counters: forwarder.counters, on: loop)
        pending = promise
        promise.futureResult.assumeIsolated().whenSuccess { [self] outcome in
            handle(outcome, from: upstream, overTCP: overTCP)
        }
    }

    private func handle(_ outcome: ExchangeOutcome, from upstream: Int, overTCP: Bool) {
        guard !finished else { return }
        pending = nil
        let address = forwarder.upstreams[upstream]
        switch outcome {
        case .answer(let answer):
            forwarder.preferred.store(upstream, ordering: .relaxed)
            finish(answer)
            return
        case .truncated:
            exchange(with: upstream, overTCP: true)
            return
        case .unusable(let reason):
            forwarder.logger.debug("upstream answer unusable", metadata: [
                "dns.upstream": "\(address)", "dns.question": "\(key)", "dns.reason": "\(reason)"])
            failed.insert(upstream)
        case .unreachable(let reason):
            forwarder.logger.debug("upstream unreachable", metadata: [
                "dns.upstream": "\(address)", "dns.question": "\(key)", "dns.reason": "\(reason)", "dns.proto": "\(overTCP ? "tcp" : "udp")"])
            failed.insert(upstream)
        case .timeout:
            forwarder.counters.timeouts.add(1, ordering: .relaxed)
            forwarder.logger.debug("upstream timed out", metadata: [
                "dns.upstream": "\(address)", "dns.question": "\(key)", "dns.proto": "\(overTCP ? "tcp" : "udp")"])
        case .cancelled:
            return
        }
        attempt()
    }

    private func finish(_ answer: ForwardedAnswer?) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        pending?.succeed(.cancelled)
        pending = nil
        forwarder.complete(key, with: answer)
    }
}
