import Metrics
import Prometheus
import Synchronization
import ZoneLinkControl
import ZoneLinkCore

/// The Prometheus registry `GET /metrics` renders, and the swift-metrics factory that feeds it.
///
/// The API counts its own requests here. Other parts of ZoneLink either set metrics through
/// `gauge(_:labels:)` / `counter(_:labels:)`, or, after `bootstrapMetricsSystem()` (once per
/// process), use plain swift-metrics (`Counter(label:dimensions:)`), which then lands here too.
public final class ControlMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory
    /// What sets gauges from live state, run before each scrape (`collectBeforeScrape`).
    private let collectors = Mutex<[@Sendable () async -> Void]>([])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
    }

    /// Makes this registry the process's swift-metrics backend. Call once, at start.
    public func bootstrapMetricsSystem() {
        MetricsSystem.bootstrap(factory)
    }

    /// Runs `collect` before every scrape, so that gauges read from live state cost nothing
    /// between scrapes: counting the gateway's kernel flows dumps the gateway namespace's whole
    /// conntrack table, which once a second cost a third of what the kernel data path spent
    /// per connection beyond routing (`Benchmarks/kernel/README.md`).
    public func collectBeforeScrape(_ collect: @escaping @Sendable () async -> Void) {
        collectors.withLock { $0.append(collect) }
    }

    /// Runs the collectors, one after the other.
    func collect() async {
        for collect in collectors.withLock({ $0 }) { await collect() }
    }

    /// A gauge in this registry (the same one for the same name and labels).
    public func gauge(_ name: String, labels: [(String, String)] = []) -> Metrics.Gauge {
        Metrics.Gauge(label: name, dimensions: labels, factory: factory)
    }

    /// A counter in this registry (the same one for the same name and labels).
    public func counter(_ name: String, labels: [(String, String)] = []) -> Metrics.Counter {
        Metrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    /// Counts one API request by route template (`GET /v1/services/{service}`) and status.
    func countRequest(route: String, status: Int) {
        counter("zonelink_control_requests_total", labels: [("route", route), ("status", String(status))]).increment()
    }

    /// Counts one committed change by operation.
    func countChange(_ operation: String) {
        counter("zonelink_control_changes_total", labels: [("operation", operation)]).increment()
    }

    /// The control plane's objects now, set before each scrape.
    func record(_ catalog: Catalog) {
        gauge("zonelink_catalog_serial").record(Int64(catalog.serial))
        gauge("zonelink_control_services").record(catalog.services.count)
        for state in ConnectionState.allCases {
            let count = catalog.endpoints.filter { catalog.connection(of: $0) == state }.count
            gauge("zonelink_control_endpoints", labels: [("connection", state.rawValue)]).record(count)
        }
        // Every known zone is listed, 0 when not shifted, so a shift's end shows as a drop.
        let shifted = catalog.shiftedZones
        for zone in catalog.knownZones.union(shifted) {
            gauge("zonelink_zonal_shift_active", labels: [("zone", zone)]).record(shifted.contains(zone) ? 1 : 0)
        }
    }

    /// The API's own connections: open now, closed at once over `control.connections`, closed
    /// for a request head or body that came too slowly (gauges of running totals, set before
    /// each scrape).
    func record(_ connections: ControlConnections) {
        gauge("zonelink_control_connections").record(connections.inUse)
        gauge("zonelink_control_connections_refused").record(connections.refused)
        gauge("zonelink_control_connections_timed_out").record(connections.timedOut)
    }

    /// The Prometheus text exposition of everything in the registry.
    public func render() -> String {
        registry.emitToString()
    }
}
