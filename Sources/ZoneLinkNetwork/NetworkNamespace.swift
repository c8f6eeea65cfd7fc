import CZoneLinkSystem
import Glibc
import NIOCore
import NIOPosix

/// Where sockets are made: the host's network namespace, or a named one (`ip netns`).
///
/// A socket belongs to the namespace of the thread that created it, and `setns` changes only
/// the calling thread. So each named namespace gets one thread of its own that entered it once
/// and then creates every socket of that namespace: listeners, and the provider-side
/// connections of flows. SwiftNIO's `bind` and `connect(to:)` create their socket
/// synchronously on the calling thread and only then hand it to an event loop, so calling them
/// here is enough. Never `setns` on an event loop or in a Swift task: both serve other work.
///
/// A thread that does nothing but create sockets of its own (the TCP relay's workers) may
/// instead `enter` the namespace it needs next; the namespace stays open for that (`handle`).
public final class NetworkNamespace: Sendable {
    /// Nil for the host's namespace.
    public let name: String?
    /// The one thread inside the namespace (nil for the host: any thread will do).
    private let thread: NIOThreadPool?
    /// The namespace, open for `enter` (-1 when it could not be opened).
    private let handle: Int32

    /// `/proc/self/ns/net` is the main thread's namespace, and ZoneLink never moves its main
    /// thread: this is the host's namespace whichever thread first asks.
    public static let host = NetworkNamespace(name: nil, thread: nil, handle: open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC))

    private init(name: String?, thread: NIOThreadPool?, handle: Int32) {
        self.name = name
        self.thread = thread
        self.handle = handle
    }

    deinit {
        if handle >= 0 { close(handle) }
    }

    /// Moves the calling thread into this namespace; false (with `errno` set) when it cannot.
    /// Only for a dedicated thread of the caller's own: it stays there until it enters another.
    public func enter() -> Bool {
        handle >= 0 && zl_enter_network_namespace(handle) == 0
    }

    /// Enters `/var/run/netns/NAME` on a new thread. Needs CAP_SYS_ADMIN.
    public static func named(_ name: String) async throws(NamespaceError) -> NetworkNamespace {
        let path = "/var/run/netns/\(name)"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(name: name, errno: errno) }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let entered: Int32
        do {
            entered = try await pool.runIfActive { zl_enter_network_namespace(fd) == 0 ? 0 : errno }
        } catch {
            close(fd)
            try? await pool.shutdownGracefully()
            throw .cannotEnter(name: name, errno: EINVAL)
        }
        guard entered == 0 else {
            close(fd)
            try? await pool.shutdownGracefully()
            throw .cannotEnter(name: name, errno: entered)
        }
        return NetworkNamespace(name: name, thread: pool, handle: fd)
    }

    /// Runs `body` where sockets it creates belong to this namespace.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard let thread else { return try body() }
        return try await thread.runIfActive(body)
    }

    /// Runs `body`, which starts an operation (a connect, a bind), where sockets it creates
    /// belong to this namespace; the operation's result arrives on `eventLoop`. In the host's
    /// namespace it runs right here, with no hop and no extra future.
    public func start<T: Sendable>(
        on eventLoop: EventLoop, _ body: @escaping @Sendable () throws -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        guard let thread else {
            do { return try body() } catch { return eventLoop.makeFailedFuture(error) }
        }
        return thread.runIfActive(eventLoop: eventLoop, body).flatMap { $0 }
    }

    public func shutdown() async {
        try? await thread?.shutdownGracefully()
    }

    public var description: String { name.map { "netns \($0)" } ?? "the host namespace" }
}

public enum NamespaceError: Error, CustomStringConvertible {
    case cannotOpen(name: String, errno: Int32)
    case cannotEnter(name: String, errno: Int32)
    case command(String, status: Int32, output: String)

    public var description: String {
        switch self {
        case .cannotOpen(let name, let code):
            "network namespace '\(name)' cannot be opened: \(String(cString: strerror(code))) (create it with `ip netns add \(name)`)"
        case .cannotEnter(let name, let code):
            "cannot enter network namespace '\(name)': \(String(cString: strerror(code))) (ZoneLink needs CAP_SYS_ADMIN for namespaces: run it as root)"
        case .command(let command, let status, let output):
            "`\(command)` failed with status \(status): \(output)"
        }
    }
}
