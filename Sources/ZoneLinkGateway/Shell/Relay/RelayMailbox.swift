import CZoneLinkSystem
import Glibc
import Synchronization

/// What other threads ask of one relay worker.
enum RelayCommand: Sendable {
    /// Start accepting on a listening socket.
    case listen(ListeningSocket)
    /// Stop watching a listening socket; `done` runs once this worker no longer touches it.
    case unlisten(ListeningSocket, done: @Sendable () -> Void)
    /// End a flow now (idle expiry, its endpoint gone): close both sockets.
    case close(RelayFlowID)
    /// Close every flow and return.
    case stop
}

/// A flow's place in its worker's table. The generation tells a flow from a later one in the
/// same slot, so a late close command or a stale event cannot reach the wrong flow.
struct RelayFlowID: Hashable, Sendable {
    var slot: Int
    var generation: UInt32
}

/// A worker's inbox: commands behind a lock, and an eventfd that wakes its `epoll_wait`.
/// Commands are rare (listener changes, expiries); the data path never comes through here.
final class RelayMailbox: Sendable {
    let wakeFD: Int32
    private let commands = Mutex<[RelayCommand]>([])

    init() throws(ListenError) {
        wakeFD = zl_eventfd()
        guard wakeFD >= 0 else { throw ListenError(errno: errno) }
    }

    deinit { close(wakeFD) }

    func post(_ command: RelayCommand) {
        commands.withLock { $0.append(command) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Everything posted so far, in order; clears the wake-up.
    func take() -> [RelayCommand] {
        var count: UInt64 = 0
        _ = read(wakeFD, &count, 8)
        return commands.withLock { commands in
            defer { commands = [] }
            return commands
        }
    }
}
