import Metrics
import Synchronization
import ZoneLinkGateway
import ZoneLinkNetwork

/// The gateway's metrics for `GET /metrics`, set from the live state before each scrape (the
/// caller hands this to `ControlMetrics.collectBeforeScrape`): open flows (and so NAT ports in
/// use) by protocol, relayed and kernel (conntrack) ones, refused flows by reason, client
/// descriptors, each backend's health, and the relay's splicing. Nothing runs between scrapes:
/// counting kernel flows reads the gateway namespace's whole conntrack table.
func gatewayMetricsCollector(flows: FlowRegistry, gateway: Gateway, budget: DescriptorBudget) -> @Sendable () async -> Void {
    let refused = RefusalCounters()
    let splicedReported = Mutex(0)
    return {
        let snapshot = flows.snapshot()
        // Kernel flows count as flows and NAT ports like relayed ones (each holds one).
        let kernel = await gateway.kernelFlows()
        for proto in ["tcp", "udp"] {
            let count = snapshot.filter { $0.flow.key.proto.rawValue == proto }.count
                + kernel.filter { $0.key.proto.rawValue == proto }.count
            Gauge(label: "zonelink_flows", dimensions: [("protocol", proto)]).record(count)
            Gauge(label: "zonelink_nat_ports_in_use", dimensions: [("protocol", proto)]).record(count)
        }
        Gauge(label: "zonelink_flows_refused_nat_exhausted").record(flows.refusedForExhaustion)
        refused.advance(to: flows.refusals)
        Gauge(label: "zonelink_descriptors_clients_in_use").record(budget.inUse)
        Gauge(label: "zonelink_descriptors_clients_limit").record(budget.clientLimit)
        Gauge(label: "zonelink_relay_splicing").record(gateway.splicing ? 1 : 0)
        let spliced = gateway.splicedFlows
        let newlySpliced = splicedReported.withLock { reported in
            defer { reported = spliced }
            return max(0, spliced - reported)
        }
        Counter(label: "zonelink_relay_spliced_flows_total").increment(by: newlySpliced)
        for entry in await gateway.backendHealth() {
            Gauge(label: "zonelink_backend_healthy", dimensions: [
                ("load_balancer", entry.loadBalancer), ("listener", "\(entry.listener)"),
                ("backend", "\(entry.backend.address)"),
            ]).record(entry.healthy ? 1 : 0)
        }
    }
}

/// `zonelink_flows_refused_total{reason}`: a counter per reason (every reason present from
/// the start, at 0), advanced by what the NAT table counted since the last scrape.
private final class RefusalCounters: Sendable {
    private let reported = Mutex<[FlowRefusal: Int]>([:])

    /// Every reason is touched each time (by 0 when nothing changed), so each is listed.
    func advance(to totals: [FlowRefusal: Int]) {
        let deltas = reported.withLock { reported in
            FlowRefusal.allCases.map { reason -> (FlowRefusal, Int) in
                let total = totals[reason, default: 0]
                defer { reported[reason] = total }
                return (reason, max(0, total - reported[reason, default: 0]))
            }
        }
        for (reason, delta) in deltas { Self.counter(reason).increment(by: delta) }
    }

    private static func counter(_ reason: FlowRefusal) -> Counter {
        Counter(label: "zonelink_flows_refused_total", dimensions: [("reason", reason.rawValue)])
    }
}
