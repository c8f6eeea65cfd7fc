import Testing
@testable import ZoneLinkCore

/// `control:`, `descriptors:` and `gateway.limits`: parsed with their defaults, and every bad
/// value refused with its key path.
@Suite("Config: limits of the control API, descriptors and gateway")
struct LimitsConfigTests {
    /// The base config with `sections` added at the top level.
    func with(_ sections: String) -> String {
        baseConfig.replacingOccurrences(of: "accounts:\n", with: sections + "\naccounts:\n")
    }

    func catalog(_ yaml: String) throws -> Catalog {
        try Catalog(configuration: Configuration.parse(yaml: yaml, file: "test.yaml"), file: "test.yaml")
    }

    @Test func defaultsWhenAbsent() throws {
        let catalog = try catalog(baseConfig)
        #expect(catalog.control == ControlSettings())
        #expect(catalog.control.connections == 256)
        #expect(catalog.control.headerTimeout == .seconds(10))
        #expect(catalog.control.bodyTimeout == .seconds(30))
        #expect(catalog.control.idleTimeout == .seconds(60))
        #expect(catalog.control.maxBodySize == 1 << 20)
        #expect(catalog.descriptors.reserve == 512)
        #expect(catalog.gateway.limits == GatewayLimits(flows: 100_000, flowsPerEndpoint: 50_000, flowsPerClient: 10_000, natPortsPerClient: 4_096))
    }

    @Test func everyKeyIsRead() throws {
        let catalog = try catalog(with("""
            control:
              connections: 8
              headerTimeout: 2s
              bodyTimeout: 3s
              idleTimeout: 500ms
              maxBodySize: 4096
            descriptors:
              reserve: 100
            gateway:
              limits: {flows: 50, flowsPerEndpoint: 40, flowsPerClient: 5, natPortsPerClient: 3}
            """))
        #expect(catalog.control == ControlSettings(
            connections: 8, headerTimeout: .seconds(2), bodyTimeout: .seconds(3), idleTimeout: .milliseconds(500), maxBodySize: 4096))
        #expect(catalog.descriptors.reserve == 100)
        #expect(catalog.gateway.limits == GatewayLimits(flows: 50, flowsPerEndpoint: 40, flowsPerClient: 5, natPortsPerClient: 3))
    }

    static let bad: [BrokenConfig] = [
        .init(rule: "control.connections is a number", yaml: "control: {connections: many}", keyPath: "control.connections", problem: "whole number"),
        .init(rule: "control.connections at least 1", yaml: "control: {connections: 0}", keyPath: "control.connections", problem: "out of range"),
        .init(rule: "control.headerTimeout is a duration", yaml: "control: {headerTimeout: 10}", keyPath: "control.headerTimeout", problem: "not a duration"),
        .init(rule: "control.bodyTimeout is a duration", yaml: "control: {bodyTimeout: -1s}", keyPath: "control.bodyTimeout", problem: "not a duration"),
        .init(rule: "control.idleTimeout is a duration", yaml: "control: {idleTimeout: later}", keyPath: "control.idleTimeout", problem: "not a duration"),
        .init(rule: "control.maxBodySize at least 1 KiB", yaml: "control: {maxBodySize: 10}", keyPath: "control.maxBodySize", problem: "out of range"),
        .init(rule: "control: unknown key", yaml: "control: {conections: 5}", keyPath: "control.conections", problem: "unknown key"),
        .init(rule: "descriptors.reserve is a number", yaml: "descriptors: {reserve: lots}", keyPath: "descriptors.reserve", problem: "whole number"),
        .init(rule: "descriptors.reserve holds the control connections", yaml: "control: {connections: 100}\ndescriptors: {reserve: 150}",
              keyPath: "descriptors.reserve", problem: "leaves no room for control.connections"),
        .init(rule: "descriptors: unknown key", yaml: "descriptors: {spare: 5}", keyPath: "descriptors.spare", problem: "unknown key"),
        .init(rule: "gateway.limits.flows at least 1", yaml: "gateway: {limits: {flows: 0}}", keyPath: "gateway.limits.flows", problem: "out of range"),
        .init(rule: "gateway.limits.flowsPerEndpoint is a number", yaml: "gateway: {limits: {flowsPerEndpoint: x}}", keyPath: "gateway.limits.flowsPerEndpoint", problem: "whole number"),
        .init(rule: "gateway.limits.flowsPerEndpoint within flows", yaml: "gateway: {limits: {flows: 10, flowsPerEndpoint: 20, flowsPerClient: 5}}",
              keyPath: "gateway.limits.flowsPerEndpoint", problem: "above gateway.limits.flows"),
        .init(rule: "gateway.limits.flowsPerClient at least 1", yaml: "gateway: {limits: {flowsPerClient: -2}}", keyPath: "gateway.limits.flowsPerClient", problem: "out of range"),
        .init(rule: "gateway.limits.flowsPerClient within flows", yaml: "gateway: {limits: {flows: 10, flowsPerEndpoint: 10, flowsPerClient: 11}}",
              keyPath: "gateway.limits.flowsPerClient", problem: "above gateway.limits.flows"),
        .init(rule: "gateway.limits.natPortsPerClient a port count", yaml: "gateway: {limits: {natPortsPerClient: 70000}}", keyPath: "gateway.limits.natPortsPerClient", problem: "out of range"),
        .init(rule: "gateway.limits: unknown key", yaml: "gateway: {limits: {flowsPerVPC: 3}}", keyPath: "gateway.limits.flowsPerVPC", problem: "unknown key"),
    ]

    @Test func aReloadNamesTheStartOnlySectionsItChanged() throws {
        let before = try catalog(with(""))
        #expect(try catalog(with("")).startOnlySectionsChanged(since: before).isEmpty)
        let after = try catalog(with("control: {connections: 10}\ngateway: {limits: {flows: 500000}}"))
        #expect(after.startOnlySectionsChanged(since: before) == ["control", "gateway.limits"])
    }

    @Test(arguments: bad)
    func badValueNamesItsKeyPath(_ broken: BrokenConfig) {
        let found = issues(with(broken.yaml))
        #expect(found.contains { $0.keyPath == broken.keyPath && $0.problem.contains(broken.problem) },
                "expected \(broken.keyPath): …\(broken.problem)…, got \(found)")
    }
}
