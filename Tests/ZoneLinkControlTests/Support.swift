import Synchronization
import Testing
import ZoneLinkTestSupport
import ZoneLinkCore
@testable import ZoneLinkControl

let accountA = "1111111111111111"  // the seed's consumer
let accountB = "2222222222222222"  // the seed's provider
let accountC = "3333333333333333"  // on no whitelist

let provider = Principal.account(accountB)
let consumer = Principal.account(accountA)
let stranger = Principal.account(accountC)

/// The seed's infrastructure (`SeedFixture`), shared with the other test targets.
let infrastructureYAML = SeedFixture.infrastructureYAML

/// The seed's service, declared in the file.
let fileServiceYAML = """
    endpointServices:
      - id: epsrv-frankfurt1
        account: account-b
        resources: [{zone: eu-central-1b, loadBalancer: clb-1b}]
        zoneAffinity: true
        whitelist: ["1111111111111111"]

    """

/// The seed's endpoint, declared in the file (its ENI address allocated).
let fileEndpointYAML = """
    endpoints:
      - id: ep-consumer1
        account: account-a
        service: epsrv-frankfurt1
        vpc: vpc-1
        securityGroups: [sg-1]
        zones: [{zone: eu-central-1b, vswitch: vsw-1b}]

    """

/// The infrastructure plus the seed's service and endpoint declared in the file.
let fileDeclaredYAML = infrastructureYAML + fileServiceYAML + fileEndpointYAML

func configuration(_ yaml: String) throws -> Configuration {
    try Configuration.parse(yaml: yaml, file: "zones/test.yaml")
}

/// Suffixes "s1", "s2", … for generated IDs, or the same one forever.
final class Suffixes: Sendable {
    private let next = Mutex(0)
    private let constant: String?

    init(constant: String? = nil) { self.constant = constant }

    var function: @Sendable () -> String {
        { [self] in constant ?? "s\(next.withLock { $0 += 1; return $0 })" }
    }
}

func plane(_ yaml: String = infrastructureYAML, state: ControlState = ControlState(), suffixes: Suffixes = Suffixes()) throws -> ControlPlane {
    try ControlPlane(base: configuration(yaml), file: "zones/test.yaml", state: state, suffix: suffixes.function)
}

/// The error an operation throws, or nil when it succeeds. (Closures infer `throws(any Error)`,
/// so the typed error is recovered here; anything else fails the test.)
func error<T>(_ body: () throws -> T, sourceLocation: SourceLocation = #_sourceLocation) -> ControlError? {
    do {
        _ = try body()
        return nil
    } catch let error as ControlError {
        return error
    } catch {
        Issue.record("not a ControlError: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The kind of result, for tables.
enum Outcome: String, Sendable, CustomStringConvertible {
    case ok, forbidden, notFound, conflict, invalid, fileManaged, notApplied, storeUnavailable

    init(_ error: ControlError?) {
        switch error {
        case nil: self = .ok
        case .forbidden: self = .forbidden
        case .notFound: self = .notFound
        case .conflict: self = .conflict
        case .invalid: self = .invalid
        case .fileManaged: self = .fileManaged
        case .notApplied: self = .notApplied
        case .storeUnavailable: self = .storeUnavailable
        }
    }

    var description: String { rawValue }
}

extension ControlError {
    var issues: [ConfigIssue] {
        if case .invalid(let issues) = self { return issues }
        return []
    }
}

/// Every change an operation reports, applied to the state it started from, gives the new
/// state; and the new state alone rebuilds the same catalog.
func expectConsistent<V>(_ before: ControlPlane, _ applied: Applied<V>, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(before.state.applying(applied.changes) == applied.state, sourceLocation: sourceLocation)
    let rebuilt = try ControlPlane(base: before.base, file: before.file, state: applied.state, suffix: { "x" })
    #expect(rebuilt.catalog.endpoints == applied.catalog.endpoints, sourceLocation: sourceLocation)
    #expect(rebuilt.catalog.services == applied.catalog.services, sourceLocation: sourceLocation)
}

/// The seed's service, created by B: zone b on clb-1b, manual accept, zone affinity.
let seedService = CreateServiceRequest(
    id: "epsrv-frankfurt1", resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")],
    autoAcceptConnections: false, zoneAffinity: true)

/// The seed's endpoint, created by A in VPC 1, zone b.
let seedEndpoint = CreateEndpointRequest(
    id: "ep-consumer1", service: "epsrv-frankfurt1", vpc: "vpc-1", securityGroups: ["sg-1"],
    zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")])

/// The seed after step 5: service created, A whitelisted, A's endpoint created (Disconnected).
func seedWorld() throws -> ControlPlane {
    var p = try plane()
    p = try p.createService(seedService, by: provider).plane
    p = try p.addToWhitelist(accountA, of: "epsrv-frankfurt1", by: provider).plane
    p = try p.createEndpoint(seedEndpoint, by: consumer).plane
    return p
}
