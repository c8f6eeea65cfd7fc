import Testing
import ZoneLinkCore
import ZoneLinkGateway

private let web = SecurityGroup(id: "sg-1", ingress: [IngressRule(protocol: .tcp, ports: 80...80, source: cidr("10.10.0.0/16"))])
private let high = SecurityGroup(id: "sg-2", ingress: [
    IngressRule(protocol: .udp, ports: 8000...8999, source: cidr("10.10.2.0/24")),
    IngressRule(protocol: nil, ports: 443...443, source: cidr("10.10.2.1/32")),
])

private func decide(
    _ proto: TransportProtocol = .tcp, port: UInt16 = 80, from source: String = "10.10.2.1",
    connection: ConnectionState = .connected, groups: [SecurityGroup] = [web, high]
) -> AdmissionDecision {
    Admission.admit(protocol: proto, port: port, source: ip(source), connection: connection, securityGroups: groups)
}

@Suite struct AdmissionTests {
    @Test func aMatchingRuleAdmits() {
        #expect(decide() == .admit)
        #expect(decide(from: "10.10.200.7") == .admit)
    }

    @Test func anyGroupMayAllow() {
        #expect(decide(.udp, port: 8080) == .admit)  // sg-2 only
    }

    @Test func portRanges() {
        #expect(decide(.udp, port: 8000) == .admit)
        #expect(decide(.udp, port: 8999) == .admit)
        #expect(decide(.udp, port: 7999) != .admit)
        #expect(decide(.udp, port: 9000) != .admit)
        #expect(decide(port: 81) != .admit)
    }

    @Test func sourceCIDRs() {
        #expect(decide(from: "10.11.0.1") != .admit)
        #expect(decide(.udp, port: 8080, from: "10.10.3.1") != .admit)
        #expect(decide(port: 443, from: "10.10.2.2") != .admit)  // /32
    }

    @Test func aRuleWithoutProtocolAllowsEveryProtocol() {
        #expect(decide(.tcp, port: 443) == .admit)
        #expect(decide(.udp, port: 443) == .admit)
        #expect(decide(.udp, port: 80) != .admit)  // sg-1's rule is tcp only
    }

    @Test(arguments: [ConnectionState.disconnected, .rejected])
    func notConnectedIsDeniedFirst(state: ConnectionState) {
        let decision = decide(connection: state)
        #expect(decision == .deny(.notConnected(state)))
        #expect("\(decision)".contains("\(state.rawValue), not Connected"))
    }

    @Test func noRuleDeniesNamingTheGroupsAndTheFlow() {
        let decision = decide(port: 22)
        #expect(decision == .deny(.noRuleAllows(protocol: .tcp, port: 22, source: ip("10.10.2.1"), groups: ["sg-1", "sg-2"])))
        guard case .deny(let reason) = decision else { return }
        #expect(reason.description == "no ingress rule of sg-1, sg-2 allows tcp/22 from 10.10.2.1")
    }

    @Test func noSecurityGroupsDeniesEverything() {
        let decision = decide(groups: [])
        #expect(decision == .deny(.noRuleAllows(protocol: .tcp, port: 80, source: ip("10.10.2.1"), groups: [])))
        #expect("\(decision)".contains("no security group"))
        #expect(decide(groups: [SecurityGroup(id: "sg-empty", ingress: [])]) != .admit)
    }
}
