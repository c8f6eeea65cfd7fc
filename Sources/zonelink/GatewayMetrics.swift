import Metrics
import NIOCore
import ZoneLinkGateway

/// The gateway's gauges for `GET /metrics`, refreshed once a second from the live state:
/// open flows (and so NAT ports in use) by protocol, flows refused for NAT port exhaustion, and
/// each backend's health.
func startGatewayMetrics(flows: FlowRegistry, gateway: Gateway, on loop: EventLoop) -> RepeatedTask {
    loop.scheduleRepeatedAsyncTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
        loop.makeFutureWithTask {
            let snapshot = flows.snapshot()
            for proto in ["tcp", "udp"] {
                let count = snapshot.filter { $0.flow.key.proto.rawValue == proto }.count
                Gauge(label: "zonelink_flows", dimensions: [("protocol", proto)]).record(count)
                Gauge(label: "zonelink_nat_ports_in_use", dimensions: [("protocol", proto)]).record(count)
            }
            Gauge(label: "zonelink_flows_refused_nat_exhausted").record(flows.refusedForExhaustion)
            for entry in await gateway.backendHealth() {
                Gauge(label: "zonelink_backend_healthy", dimensions: [
                    ("load_balancer", entry.loadBalancer), ("listener", "\(entry.listener)"),
                    ("backend", "\(entry.backend.address)"),
                ]).record(entry.healthy ? 1 : 0)
            }
        }
    }
}
