/// How much of the gateway one party may take (`gateway.limits`): without these, one client
/// could open flows until the process runs out of descriptors or its load balancer out of
/// NAT ports, and every other consumer would be refused.
///
/// Each bound counts open flows in the NAT table; a flow past one is refused (TCP: reset,
/// UDP: dropped) and counted by reason.
public struct GatewayLimits: Hashable, Sendable {
    /// Open flows in the whole gateway.
    public var flows: Int
    /// Open flows through the ENIs of one endpoint.
    public var flowsPerEndpoint: Int
    /// Open flows of one client: one address in one consumer VPC, whatever its ports.
    public var flowsPerClient: Int
    /// NAT ports one client may hold in one load balancer's pool of one protocol (each flow
    /// holds one), so that it cannot exhaust what the load balancer's other clients share.
    public var natPortsPerClient: Int

    public init(flows: Int = 100_000, flowsPerEndpoint: Int = 50_000, flowsPerClient: Int = 10_000, natPortsPerClient: Int = 4_096) {
        self.flows = flows
        self.flowsPerEndpoint = flowsPerEndpoint
        self.flowsPerClient = flowsPerClient
        self.natPortsPerClient = natPortsPerClient
    }

    /// No bound at all: for tests of other behaviour and for tools.
    public static let unlimited = GatewayLimits(flows: .max, flowsPerEndpoint: .max, flowsPerClient: .max, natPortsPerClient: .max)
}

/// Bounds of the control API (`control:`), for the Unix socket and `--control-tcp` together.
///
/// The API needs no token to connect, so without them anyone who can reach the socket could
/// hold descriptors with silent or trickling connections until nothing else could open one.
public struct ControlSettings: Hashable, Sendable {
    /// API connections open at once; one more is closed as soon as it is accepted.
    public var connections: Int
    /// From accepting a connection until its request head (request line and headers) is in.
    public var headerTimeout: Duration
    /// From a request head until the whole declared body is in.
    public var bodyTimeout: Duration
    /// How long a kept-alive connection may wait for its next request.
    public var idleTimeout: Duration
    /// Largest request body accepted, in bytes (413 above).
    public var maxBodySize: Int
    /// Where the state is committed (`serve --store` overrides it): SQLite in the state
    /// directory by default, or a PostgreSQL database several hosts share.
    public var store: StoreLocation

    public init(
        connections: Int = 256, headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(60), maxBodySize: Int = 1 << 20, store: StoreLocation = .sqlite
    ) {
        self.store = store
        self.connections = connections
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxBodySize = maxBodySize
    }
}

/// The process's file descriptors (`descriptors:`): how many are kept back from clients.
public struct DescriptorSettings: Hashable, Sendable {
    /// Descriptors clients never get: listeners, health probes, the state store, the log and
    /// the control API's connections (at most `control.connections`) come out of these.
    public var reserve: Int

    public init(reserve: Int = 512) {
        self.reserve = reserve
    }

    /// Descriptors of the reserve ZoneLink needs besides the control API's connections:
    /// listeners, a health probe per backend in flight, the store, eventfds and epolls.
    public static let ownNeeds = 64
}

extension Catalog {
    /// The sections a running server reads at start only (`control`, `descriptors`,
    /// `gateway.limits`) that differ from `previous`'s, by key: a reload that changes them
    /// says so, since it cannot apply them.
    public func startOnlySectionsChanged(since previous: Catalog) -> [String] {
        var changed: [String] = []
        if control != previous.control { changed.append("control") }
        if descriptors != previous.descriptors { changed.append("descriptors") }
        if gateway.limits != previous.gateway.limits { changed.append("gateway.limits") }
        if gateway.attribution != previous.gateway.attribution { changed.append("gateway.attribution") }
        return changed
    }
}

/// The attribution log (`gateway.attribution`): every flow's open and close, as JSON lines in
/// `<state-dir>/attribution.log`, so that `zonelink nat history` can say who held a NAT port.
/// When the file would pass `maxFileSize` it is renamed `attribution.log.1` (older ones move
/// up) and a new one started; past `files` rotated files the oldest is deleted. At a few
/// hundred bytes a line, the defaults keep about two million flows (576 MiB at most).
public struct AttributionSettings: Hashable, Sendable {
    /// False: no log is kept (no file is written; `zonelink nat history` has nothing to read).
    /// For an operator who must not keep who-connected-when, or cannot spare the disk.
    public var enabled: Bool
    /// Bytes one file may reach before it is rotated.
    public var maxFileSize: Int
    /// Rotated files kept besides the current one.
    public var files: Int

    public init(enabled: Bool = true, maxFileSize: Int = 64 << 20, files: Int = 8) {
        self.enabled = enabled
        self.maxFileSize = maxFileSize
        self.files = files
    }
}
