import Foundation
import Glibc
import NIOCore
import Synchronization

/// Tells systemd how the service is doing (sd_notify(3)): READY=1 once every listener is bound,
/// RELOADING=1 / READY=1 around a reload, STOPPING=1, a one-line STATUS=, and WATCHDOG=1 pings
/// sent from an event loop, so a wedged loop stops the pings and systemd restarts the service.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing.
final class SystemdNotifier: Sendable {
    private let socketPath: String?
    /// Parts that must report ready before READY=1 (DNS, gateway).
    private let pending: Mutex<Set<String>>

    init(waitingFor parts: Set<String>, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        self.pending = Mutex(parts)
    }

    /// Marks `part` ready; the last one sends READY=1 with `status`.
    func ready(_ part: String, status: @autoclosure () -> String) {
        let all = pending.withLock { pending in
            pending.remove(part)
            return pending.isEmpty
        }
        if all { send("READY=1\nSTATUS=\(status())") }
    }

    func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        send("RELOADING=1\nMONOTONIC_USEC=\(UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000)")
    }

    func reloaded(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// A new STATUS= line alone (after an API change such as a zonal shift, or the store
    /// coming back).
    func status(_ text: String) { send("STATUS=\(text)") }

    func stopping() { send("STOPPING=1\nSTATUS=stopping") }

    /// Pings the watchdog at half the interval systemd asked for, from `loop`.
    func startWatchdog(on loop: EventLoop, environment: [String: String] = ProcessInfo.processInfo.environment) -> RepeatedTask? {
        guard socketPath != nil, let text = environment["WATCHDOG_USEC"], let usec = Int64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], pid != "\(getpid())" { return nil }
        return loop.scheduleRepeatedTask(initialDelay: .zero, delay: .microseconds(usec / 2)) { [self] _ in
            send("WATCHDOG=1")
        }
    }

    private func send(_ message: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // an abstract socket
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, length) }
        }
    }
}
