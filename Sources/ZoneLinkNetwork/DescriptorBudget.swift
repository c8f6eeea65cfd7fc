#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The process's file descriptors, split into what clients may use and a reserve that only
/// ZoneLink's own work touches: listeners, health probes, the control API, the state store.
///
/// Every socket a client causes (a DNS-over-TCP connection, an API connection, a flow's two
/// sockets, a UDP session's socket) is taken from the budget before it is accepted or opened
/// and given back when closed. When the client share is spent, new client sockets are refused
/// while the reserve stays untouched, so a flood of idle connections can neither reset flows
/// nor starve health checks (which would mark every backend down and switch affinity off).
///
/// It counts, it does not open or close anything.
public final class DescriptorBudget: Sendable {
    /// Descriptors clients may hold at once.
    public let clientLimit: Int
    /// Descriptors kept back for ZoneLink's own work.
    public let reserve: Int
    private let used = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    /// A budget of `limit` descriptors in all, `reserve` of them kept back, `alreadyOpen` in
    /// use before any client came (the binary, its libraries, the log, the store).
    public init(limit: Int, reserve: Int, alreadyOpen: Int = 0) {
        self.reserve = reserve
        self.clientLimit = max(0, limit - reserve - alreadyOpen)
    }

    /// No limit: for tests and tools that run without a budget.
    public static var unlimited: DescriptorBudget { DescriptorBudget(limit: Int.max / 2, reserve: 0) }

    /// Takes `count` descriptors for a client; false (counted) when that would pass the limit.
    public func acquire(_ count: Int = 1) -> Bool {
        var current = used.load(ordering: .relaxed)
        while true {
            guard current + count <= clientLimit else {
                refused.add(1, ordering: .relaxed)
                return false
            }
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + count, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives back what `acquire` took.
    public func release(_ count: Int = 1) {
        used.subtract(count, ordering: .relaxed)
    }

    /// Descriptors clients hold now.
    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Client sockets refused for want of descriptors since start.
    public var refusals: Int { refused.load(ordering: .relaxed) }

    /// Raises the soft RLIMIT_NOFILE to the hard one and returns the soft limit now in force.
    public static func raiseSoftLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == rlim_t.max ? 1 << 20 : Int(clamping: limit.rlim_cur)  // RLIM_INFINITY (all ones), which Swift cannot import
    }

    /// Descriptors this process has open now (`/proc/self/fd`); for start-up and tests only.
    public static func openNow() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 2) { String(cString: $0) }
            }
            if name != "." && name != ".." { count += 1 }
        }
        return max(0, count - 1)  // the directory stream itself
    }
}
