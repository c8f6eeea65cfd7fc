import ZoneLinkControl
import ZoneLinkCore

/// The body of every error response: a stable code, one message naming the rule, and for
/// `invalid` the issues by key path. docs/openapi.yaml: `Error`.
public struct ErrorBody: Codable, Hashable, Sendable {
    public var code: String
    public var message: String
    public var issues: [IssueBody]

    public init(code: String, message: String, issues: [IssueBody] = []) {
        self.code = code
        self.message = message
        self.issues = issues
    }

    public init(_ error: ControlError) {
        var issues: [IssueBody] = []
        if case .invalid(let found) = error { issues = found.map(IssueBody.init) }
        self.init(code: error.code, message: error.message, issues: issues)
    }
}

/// One validation problem: where (`zones[0].address`), what, and what to do.
public struct IssueBody: Codable, Hashable, Sendable {
    public var keyPath: String
    public var problem: String
    public var hint: String

    public init(keyPath: String, problem: String, hint: String) {
        self.keyPath = keyPath
        self.problem = problem
        self.hint = hint
    }

    public init(_ issue: ConfigIssue) {
        self.init(keyPath: issue.keyPath, problem: issue.problem, hint: issue.hint)
    }
}

/// `POST /v1/services/{service}/whitelist`.
public struct AddWhitelistEntryRequest: Codable, Hashable, Sendable {
    /// The 16-digit account ID to allow.
    public var account: String

    public init(account: String) { self.account = account }
}

/// One flow of the gateway's NAT table, as `GET /v1/nat` returns it (and
/// `zonelink nat list --json` prints it).
public struct NATRow: Codable, Hashable, Sendable {
    /// `tcp` or `udp`.
    public var `protocol`: String
    /// The consumer VPC.
    public var vpc: String
    /// The client's address and port.
    public var client: String
    /// The ENI's address and port the client reached.
    public var eni: String
    /// The NAT address and port on the provider's side.
    public var nat: String
    /// The backend (or load balancer) address and port.
    public var target: String
    public var endpoint: String
    public var ageSeconds: Double
    public var bytesFromClient: Int
    public var bytesFromTarget: Int

    public init(
        protocol: String, vpc: String, client: String, eni: String, nat: String, target: String, endpoint: String,
        ageSeconds: Double, bytesFromClient: Int, bytesFromTarget: Int
    ) {
        self.protocol = `protocol`
        self.vpc = vpc
        self.client = client
        self.eni = eni
        self.nat = nat
        self.target = target
        self.endpoint = endpoint
        self.ageSeconds = ageSeconds
        self.bytesFromClient = bytesFromClient
        self.bytesFromTarget = bytesFromTarget
    }
}

/// `GET /v1/health`: the gateway's view of backends and of endpoint zones.
public struct HealthReport: Codable, Hashable, Sendable {
    /// `ok` when every backend and zone shown is healthy, else `degraded`.
    public var status: String
    /// The serial of the catalog being served.
    public var configSerial: UInt32
    public var backends: [BackendHealth]
    public var zones: [ZoneHealthRow]

    public init(status: String? = nil, configSerial: UInt32 = 0, backends: [BackendHealth] = [], zones: [ZoneHealthRow] = []) {
        self.configSerial = configSerial
        self.backends = backends
        self.zones = zones
        self.status = status ?? ((backends.allSatisfy(\.healthy) && zones.allSatisfy(\.healthy)) ? "ok" : "degraded")
    }
}

/// One backend of a load balancer listener, as health checks see it.
public struct BackendHealth: Codable, Hashable, Sendable {
    public var loadBalancer: String
    /// The listener, e.g. its port (`80`).
    public var listener: String
    /// `192.168.24.200:80`.
    public var address: String
    public var healthy: Bool

    public init(loadBalancer: String, listener: String, address: String, healthy: Bool) {
        self.loadBalancer = loadBalancer
        self.listener = listener
        self.address = address
        self.healthy = healthy
    }
}

/// One ENI of an endpoint: healthy when its zone has a healthy backend (DNS zone affinity
/// skips unhealthy ones).
public struct ZoneHealthRow: Codable, Hashable, Sendable {
    public var endpoint: String
    public var zone: String
    public var healthy: Bool

    public init(endpoint: String, zone: String, healthy: Bool) {
        self.endpoint = endpoint
        self.zone = zone
        self.healthy = healthy
    }

    /// The row of one ENI.
    public init(_ eni: ENIID, healthy: Bool) { self.init(endpoint: eni.endpoint, zone: eni.zone, healthy: healthy) }

    /// The ENI this row is about.
    public var eni: ENIID { ENIID(endpoint: endpoint, zone: zone) }
}
