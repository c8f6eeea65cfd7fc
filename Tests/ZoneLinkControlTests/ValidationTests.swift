import Testing
import ZoneLinkCore
@testable import ZoneLinkControl

/// A request that breaks one rule, and the key path and problem the refusal must carry.
struct BrokenRequest: Sendable, CustomTestStringConvertible {
    var rule: String
    var run: @Sendable (ControlPlane) -> ControlError?
    var keyPath: String
    var problem: String
    var testDescription: String { rule }
}

func endpointRequest(
    id: String? = nil, vpc: String = "vpc-1", groups: [String]? = nil, zones: [ZoneChoice] = [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")]
) -> CreateEndpointRequest {
    CreateEndpointRequest(id: id, service: "epsrv-frankfurt1", vpc: vpc, securityGroups: groups, zones: zones)
}

func creatingEndpoint(_ request: CreateEndpointRequest, by principal: Principal = consumer) -> @Sendable (ControlPlane) -> ControlError? {
    { world in error { try world.createEndpoint(request, by: principal) } }
}

func creatingService(_ request: CreateServiceRequest) -> @Sendable (ControlPlane) -> ControlError? {
    { world in error { try world.createService(request, by: provider) } }
}

let zoneB = ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-1b")

@Suite("Validation: refusals carry key paths into the request")
struct ValidationTests {
    static let cases: [BrokenRequest] = [
        // Endpoints: the catalog's rules, mapped to the request.
        .init(rule: "address inside the vSwitch", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.9.9")])),
              keyPath: "zones[0].address", problem: "is not inside vSwitch vsw-1b"),
        .init(rule: "address is a host address", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.2.255")])),
              keyPath: "zones[0].address", problem: "network or broadcast"),
        .init(rule: "address is an address", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.2")])),
              keyPath: "zones[0].address", problem: "is not an IPv4 address"),
        .init(rule: "address free of other ENIs", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b", address: "10.10.2.4")])),
              keyPath: "zones[0].address", problem: "already taken in VPC vpc-1 by the ENI of ep-consumer1"),
        .init(rule: "address free of backends", run: creatingEndpoint(endpointRequest(vpc: "vpc-2", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-2b", address: "192.168.24.200")]), by: provider),
              keyPath: "zones[0].address", problem: "is a backend server's address"),
        .init(rule: "address free of NAT addresses", run: creatingEndpoint(endpointRequest(vpc: "vpc-2", zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-2b", address: "192.168.24.240")]), by: provider),
              keyPath: "zones[0].address", problem: "already taken in VPC vpc-2"),
        .init(rule: "zones of the service", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1c", vswitch: "vsw-1c")])),
              keyPath: "zones[0].zone", problem: "epsrv-frankfurt1 has no resource in zone 'eu-central-1c'"),
        .init(rule: "vSwitch in the zone", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1a")])),
              keyPath: "zones[0].vswitch", problem: "vsw-1a is in zone eu-central-1a"),
        .init(rule: "vSwitch of the VPC", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-2b")])),
              keyPath: "zones[0].vswitch", problem: "unknown vSwitch 'vsw-2b' in VPC vpc-1"),
        .init(rule: "one ENI per zone", run: creatingEndpoint(endpointRequest(zones: [ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b"), ZoneChoice(zone: "eu-central-1b", vswitch: "vsw-1b")])),
              keyPath: "zones[1].zone", problem: "is chosen twice"),
        .init(rule: "at least one zone", run: creatingEndpoint(endpointRequest(zones: [])),
              keyPath: "zones", problem: "is empty"),
        .init(rule: "at most five security groups", run: creatingEndpoint(endpointRequest(groups: ["sg-1", "sg-2", "sg-3", "sg-4", "sg-5", "sg-6"])),
              keyPath: "securityGroups", problem: "has 6 groups"),
        .init(rule: "security groups of the VPC", run: creatingEndpoint(endpointRequest(groups: ["sg-1", "sg-9"])),
              keyPath: "securityGroups[1]", problem: "unknown security group 'sg-9' in VPC vpc-1"),
        .init(rule: "endpoint ID form", run: creatingEndpoint(endpointRequest(id: "consumer2")),
              keyPath: "id", problem: "is not an endpoint ID"),
        .init(rule: "known VPC", run: creatingEndpoint(endpointRequest(vpc: "vpc-9")),
              keyPath: "vpc", problem: "unknown VPC 'vpc-9'"),
        // Services.
        .init(rule: "service ID form", run: creatingService(CreateServiceRequest(id: "frankfurt2", resources: [zoneB])),
              keyPath: "id", problem: "is not a service ID"),
        .init(rule: "known load balancer", run: creatingService(CreateServiceRequest(resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-9")])),
              keyPath: "resources[0].loadBalancer", problem: "unknown load balancer 'clb-9'"),
        .init(rule: "load balancer in the resource's zone", run: creatingService(CreateServiceRequest(resources: [ServiceResourceSpec(zone: "eu-central-1a", loadBalancer: "clb-1b")])),
              keyPath: "resources[0].loadBalancer", problem: "clb-1b is in zone eu-central-1b, not eu-central-1a"),
        .init(rule: "one resource per zone", run: creatingService(CreateServiceRequest(resources: [zoneB, zoneB])),
              keyPath: "resources[1].zone", problem: "has a resource already"),
        .init(rule: "at least one resource", run: creatingService(CreateServiceRequest(resources: [])),
              keyPath: "resources", problem: "is empty"),
        .init(rule: "private domain outside the generated domain", run: creatingService(CreateServiceRequest(resources: [zoneB], privateDomain: "api.privatelink.internal")),
              keyPath: "privateDomain", problem: "overlaps the generated domain"),
        .init(rule: "private domains are not shared", run: creatingService(CreateServiceRequest(resources: [zoneB], privateDomain: "api.provider.example")),
              keyPath: "privateDomain", problem: "overlaps the private domain api.provider.example"),
        .init(rule: "private domain under an allowed suffix", run: creatingService(CreateServiceRequest(resources: [zoneB], privateDomain: "github.com")),
              keyPath: "privateDomain", problem: "lies under no suffix the operator allows"),
        // Whitelist.
        .init(rule: "whitelist holds account IDs", run: { world in error { try world.addToWhitelist("account-c", of: "epsrv-frankfurt1", by: provider) } },
              keyPath: "account", problem: "'account-c' is not an account ID"),
    ]

    /// The seed after step 5, plus a service with private domain api.provider.example.
    static func world() throws -> ControlPlane {
        let world = try seedWorld()
        return try world.createService(CreateServiceRequest(id: "epsrv-named", resources: [zoneB], privateDomain: "api.provider.example"), by: provider).plane
    }

    @Test(arguments: cases)
    func refusalNamesKeyPath(_ broken: BrokenRequest) throws {
        let failure = broken.run(try Self.world())
        guard case .invalid(let issues) = failure else { Issue.record("expected invalid, got \(String(describing: failure))"); return }
        #expect(issues.contains { $0.keyPath == broken.keyPath && $0.problem.contains(broken.problem) },
                "expected \(broken.keyPath): …\(broken.problem)…, got \(issues)")
        #expect(failure?.httpStatus == 422 && failure?.code == "invalid")
        #expect(issues.allSatisfy { !$0.hint.isEmpty })
    }

    @Test func everyProblemOfARequestIsReported() throws {
        let failure = error {
            try Self.world().createEndpoint(endpointRequest(groups: ["sg-9"], zones: [ZoneChoice(zone: "eu-central-1c", vswitch: "vsw-1a")]), by: consumer)
        }
        let paths = Set(failure?.issues.map(\.keyPath) ?? [])
        #expect(paths.isSuperset(of: ["securityGroups[0]", "zones[0].zone", "zones[0].vswitch"]), "\(paths)")
    }

    @Test func unknownNamesHintOnlyAtTheAccountsOwnObjects() throws {
        let world = try Self.world()
        let vpc = error { try world.createEndpoint(endpointRequest(vpc: "vpc-9"), by: consumer) }
        #expect(vpc?.issues.first?.hint == "one of: vpc-1")
        let lb = error { try world.createService(CreateServiceRequest(resources: [ServiceResourceSpec(zone: "eu-central-1b", loadBalancer: "clb-9")]), by: stranger) }
        #expect(lb?.issues.first?.hint == "one of: clb-3b")
    }

    @Test func aRefusedRequestChangesNothing() throws {
        let world = try Self.world()
        _ = error { try world.createEndpoint(endpointRequest(groups: ["sg-9"]), by: consumer) }
        #expect(world.state.endpoints.map(\.id) == ["ep-consumer1"])
    }
}
