import CZoneLinkSystem
import Foundation
import Logging
import Synchronization

/// The gateway's TCP data path: `workers` threads (`RelayWorker`), each accepting on every ENI
/// listener and relaying the flows it accepted. Listeners come and go while it runs.
final class TCPRelay: Sendable {
    private let mailboxes: [RelayMailbox]
    private let finished: AsyncStream<Void>
    /// The kernel shortcut for long-lived flows, shared by the workers, made when first needed.
    let splicing: RelaySplicingLoader

    init(workers: Int, logger: Logger) throws(ListenError) {
        var mailboxes: [RelayMailbox] = []
        var epolls: [Int32] = []
        for _ in 0..<max(1, workers) {
            let epoll = zl_epoll_create()
            guard epoll >= 0 else {
                let error = ListenError(errno: errno)
                epolls.forEach { close($0) }
                throw error
            }
            epolls.append(epoll)
            mailboxes.append(try RelayMailbox())
        }
        let (finished, finishing) = AsyncStream<Void>.makeStream()
        self.mailboxes = mailboxes
        self.finished = finished
        let splicing = RelaySplicingLoader(logger: logger)
        self.splicing = splicing
        for (index, (epoll, mailbox)) in zip(epolls, mailboxes).enumerated() {
            Thread.detachNewThread {
                // Named for top(1) and /proc/PID/task/*/comm, where benchmarks look.
                zl_set_thread_name("tcp-relay-\(index)")
                RelayWorker(epoll: epoll, mailbox: mailbox, splicing: splicing, logger: logger).run()
                close(epoll)
                finishing.yield()
            }
        }
    }

    /// Every worker accepts on `socket` from now on.
    func listen(_ socket: ListeningSocket) {
        for mailbox in mailboxes { mailbox.post(.listen(socket)) }
    }

    /// Every worker stops watching `socket`; then it is closed (its port is free on return).
    func unlisten(_ socket: ListeningSocket) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = Mutex(mailboxes.count)
            for mailbox in mailboxes {
                mailbox.post(.unlisten(socket, done: {
                    if remaining.withLock({ $0 -= 1; return $0 }) == 0 { done.resume() }
                }))
            }
        }
        socket.close()
    }

    /// Stops every worker; each closes the flows it still holds. Once only.
    func stop() async {
        for mailbox in mailboxes { mailbox.post(.stop) }
        var stopped = 0
        for await _ in finished {
            stopped += 1
            if stopped == mailboxes.count { break }
        }
    }
}
