import Metrics
import NIOCore
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// Lets DNS-over-TCP connections in or closes them at once: `dns.limits.tcpConnections` over
/// every listener, `tcpConnectionsPerSource` from one address (a `ClientQuota`), and one
/// descriptor each from the process's `DescriptorBudget`. Shared by every TCP listener; the
/// lock is held for one count. Refusals are counted (`zonelink_dns_tcp_refused_total{reason}`)
/// and logged, throttled.
final class StreamGate: Sendable {
    /// Why a connection was closed at once: the `reason` label.
    enum Refusal: String, Sendable {
        case connections
        case perSource
        case descriptors
    }

    /// What a new connection gets: its queue and deadlines.
    struct ConnectionSettings: Sendable {
        var queuedAnswers: Int
        var idleTimeout: Duration
        var messageTimeout: Duration
    }

    private let quota: Mutex<ClientQuota>
    private let current: Mutex<ConnectionSettings>
    private let budget: DescriptorBudget
    private let warnings: ThrottledWarnings

    init(limits: DNSLimits, idleTimeout: Duration, budget: DescriptorBudget, warnings: ThrottledWarnings) {
        self.quota = Mutex(ClientQuota(total: limits.tcpConnections, perClient: limits.tcpConnectionsPerSource))
        self.current = Mutex(Self.connectionSettings(limits, idleTimeout: idleTimeout))
        self.budget = budget
        self.warnings = warnings
    }

    /// New limits (a reload) for connections from now on; open ones keep theirs and still count.
    func update(limits: DNSLimits, idleTimeout: Duration) {
        quota.withLock { $0 = $0.withLimits(total: limits.tcpConnections, perClient: limits.tcpConnectionsPerSource) }
        current.withLock { $0 = Self.connectionSettings(limits, idleTimeout: idleTimeout) }
    }

    /// The queue and deadlines for a connection accepted now.
    var settings: ConnectionSettings { current.withLock { $0 } }

    private static func connectionSettings(_ limits: DNSLimits, idleTimeout: Duration) -> ConnectionSettings {
        ConnectionSettings(queuedAnswers: limits.tcpQueuedAnswers, idleTimeout: idleTimeout, messageTimeout: limits.tcpMessageTimeout)
    }

    /// Admits a freshly accepted connection, or closes it; an admitted one is counted out when
    /// it closes. Returns whether it stays.
    func admit(_ channel: Channel) -> Bool {
        let source = channel.remoteAddress?.ipv4Endpoint?.address
        var refusal: Refusal? = switch quota.withLock({ $0.take(for: source) }) {
        case .total: .connections
        case .perClient: .perSource
        case nil: nil
        }
        if refusal == nil, !budget.acquire() {
            quota.withLock { $0.release(for: source) }
            refusal = .descriptors
        }
        if let refusal {
            Counter(label: "zonelink_dns_tcp_refused_total", dimensions: [("reason", refusal.rawValue)]).increment()
            warnings.warn(
                "dns.tcp.refused.\(refusal.rawValue)", "DNS TCP connection closed at once: \(Self.explain(refusal))",
                metadata: ["dns.source": "\(source.map { "\($0)" } ?? "-")"])
            channel.close(promise: nil)
            return false
        }
        channel.closeFuture.whenComplete { [self] _ in
            budget.release()
            quota.withLock { $0.release(for: source) }
        }
        return true
    }

    private static func explain(_ refusal: Refusal) -> String {
        switch refusal {
        case .connections: "dns.limits.tcpConnections are open"
        case .perSource: "dns.limits.tcpConnectionsPerSource are open from this source"
        case .descriptors: "the descriptors set aside for clients are in use"
        }
    }
}
