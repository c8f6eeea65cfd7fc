import Testing
import ZoneLinkCore
@testable import ZoneLinkGateway

/// The new-flow decision with explicit outcomes and times: what each step asks for, and what a
/// refused or ended flow gives back.
@Suite struct FlowOpeningTests {
    let nat = ep("192.168.24.240:1024")
    let nextNAT = ep("192.168.24.240:1025")

    /// A TCP flow brought to its connect at `now`: admitted, 2 descriptors, backend 1, `nat`.
    func connecting(at now: Moment = at(10)) -> FlowOpening {
        var opening = FlowOpening(descriptors: 2)
        _ = opening.admitted(.admit)
        _ = opening.descriptorsTaken(true)
        _ = opening.picked((seedTarget, 1))
        _ = opening.natPortTaken(.success(nat), now: now)
        return opening
    }

    @Test func admittedFlowTakesDescriptorsTargetAndNATPortThenConnects() {
        var opening = FlowOpening(descriptors: 2)
        #expect(opening.admitted(.admit) == .takeDescriptors(2))
        #expect(opening.descriptorsTaken(true) == .pickTarget)
        #expect(opening.picked((seedTarget, 1)) == .takeNATPort(target: seedTarget, backend: 1))
        #expect(opening.natPortTaken(.success(nat), now: at(10)) == .connect(from: nat, to: seedTarget))
        #expect(opening.connectDeadline == at(15))
        #expect(opening.connected() == .relay)
        #expect(opening.isOpen)
        #expect(opening.connectDeadline == nil)
        #expect(opening.end() == .close(giveBack: FlowHoldings(descriptors: 2, picked: true, backend: 1, natEntry: true)))
    }

    @Test func deniedByAdmissionHoldsNothing() {
        var opening = FlowOpening(descriptors: 1)
        let reason = DenialReason.noRuleAllows(protocol: .udp, port: 53, source: ip("10.10.2.1"), groups: [])
        let step = opening.admitted(.deny(reason))
        #expect(step == .refuse(.denied(reason), giveBack: .nothing))
        #expect(step.refusal?.counted == nil)
        #expect(opening.state == .over)
    }

    @Test func outOfDescriptorsIsCountedAsDescriptors() {
        var opening = FlowOpening(descriptors: 2)
        _ = opening.admitted(.admit)
        let step = opening.descriptorsTaken(false)
        #expect(step == .refuse(.outOfDescriptors, giveBack: .nothing))
        #expect(step.refusal?.counted == .descriptors)
    }

    @Test func noHealthyBackendGivesBackTheDescriptors() {
        var opening = FlowOpening(descriptors: 2)
        _ = opening.admitted(.admit)
        _ = opening.descriptorsTaken(true)
        #expect(opening.picked(nil) == .refuse(.noHealthyBackend, giveBack: FlowHoldings(descriptors: 2)))
    }

    @Test func natRefusalGivesBackTargetAndDescriptorsAndKeepsItsReason() {
        var opening = FlowOpening(descriptors: 1)
        _ = opening.admitted(.admit)
        _ = opening.descriptorsTaken(true)
        _ = opening.picked((seedTarget, nil))
        let error = NATError.limitReached(.flowsPerClient, limit: 4, scope: "client 10.10.2.1 of vpc-1")
        let step = opening.natPortTaken(.failure(error), now: at(0))
        #expect(step == .refuse(.nat(error), giveBack: FlowHoldings(descriptors: 1, picked: true, backend: nil)))
        #expect(step.refusal?.counted == .flowsPerClient)
        #expect(OpeningRefusal.nat(.portsExhausted(providerVPC: "vpc-2", natAddresses: seedNAT, protocol: .tcp)).counted == .natPortsExhausted)
    }

    /// The events of a refusal go to the consumer and the provider alike, so their summary
    /// names no address of either side; the operator's log line (`description`) names them.
    @Test func refusalSummariesNameNoAddressOfEitherSide() {
        let client = IPv4Address("10.10.2.1")!
        let refusals: [OpeningRefusal] = [
            .denied(.notConnected(.disconnected)),
            .denied(.noRuleAllows(protocol: .tcp, port: 80, source: client, groups: ["sg-no80"])),
            .denied(.noRuleAllows(protocol: .udp, port: 53, source: client, groups: [])),
            .outOfDescriptors,
            .noHealthyBackend,
            .nat(.portsExhausted(providerVPC: "vpc-2", natAddresses: seedNAT, protocol: .tcp)),
            .nat(.noNATAddresses(providerVPC: "vpc-2", loadBalancer: "clb-1b")),
            .nat(.limitReached(.flowsPerClient, limit: 4, scope: "client 10.10.2.1 of vpc-1")),
            .unreachable(target: seedTarget, from: nextNAT, reason: "Connection refused"),
        ]
        let addresses = [client.description, "vpc-2", seedTarget.address.description, nextNAT.address.description]
            + seedNAT.map(\.description)
        for refusal in refusals {
            #expect(!addresses.contains { refusal.summary.contains($0) }, "\(refusal.category): \(refusal.summary)")
            #expect(!refusal.summary.isEmpty)
        }
        #expect(refusals.map(\.category) == [
            "denied", "denied", "denied", "descriptors", "no_healthy_backend", "nat_exhausted", "no_nat_address", "flows_per_client", "unreachable",
        ])
        #expect(refusals[1].summary == "no ingress rule of sg-no80 allows tcp/80 from the client")
        #expect(refusals[7].summary == "the limit gateway.limits.flowsPerClient (4) is reached")
    }

    @Test func portInUseRetriesWithTheNextPortThenGivesUpAfterThreePorts() {
        var opening = connecting()
        #expect(opening.connectFailed(portInUse: true, reason: "Address already in use") == .retryWithNextPort(target: seedTarget, backend: 1))
        #expect(opening.holdings.natEntry == false)
        #expect(opening.natPortTaken(.success(nextNAT), now: at(11)) == .connect(from: nextNAT, to: seedTarget))
        #expect(opening.connectDeadline == at(16))
        #expect(opening.connectFailed(portInUse: true, reason: "Address already in use") == .retryWithNextPort(target: seedTarget, backend: 1))
        let third = ep("192.168.24.240:1026")
        #expect(opening.natPortTaken(.success(third), now: at(12)) == .connect(from: third, to: seedTarget))
        #expect(opening.natPortsTried == 3)
        #expect(opening.connectFailed(portInUse: true, reason: "Address already in use") == .refuse(
            .unreachable(target: seedTarget, from: third, reason: "Address already in use"),
            giveBack: FlowHoldings(descriptors: 2, picked: true, backend: 1, natEntry: true)))
    }

    @Test func otherConnectFailureRefusesAtOnceAndGivesBackEverything() {
        var opening = connecting()
        let step = opening.connectFailed(portInUse: false, reason: "Connection refused")
        #expect(step == .refuse(
            .unreachable(target: seedTarget, from: nat, reason: "Connection refused"),
            giveBack: FlowHoldings(descriptors: 2, picked: true, backend: 1, natEntry: true)))
        #expect(step.refusal?.counted == nil)
        #expect("\(step.refusal!)" == "cannot reach \(seedTarget) from \(nat): Connection refused")
    }

    @Test func connectTimesOutFiveSecondsAfterItStarted() {
        var opening = connecting(at: at(10))
        #expect(opening.expire(now: at(14)) == nil)
        #expect(opening.expire(now: at(15)) == .refuse(
            .unreachable(target: seedTarget, from: nat, reason: "no answer within 5.0 seconds"),
            giveBack: FlowHoldings(descriptors: 2, picked: true, backend: 1, natEntry: true)))
        #expect(opening.expire(now: at(20)) == nil)
    }

    @Test func anOpenFlowNeverTimesOutAndGivesBackOnlyOnce() {
        var opening = connecting(at: at(10))
        _ = opening.connected()
        #expect(opening.expire(now: at(3600)) == nil)
        #expect(opening.end() == .close(giveBack: FlowHoldings(descriptors: 2, picked: true, backend: 1, natEntry: true)))
        #expect(opening.end() == .close(giveBack: .nothing))
    }

    @Test func aRefusedFlowHasNothingLeftToGiveBack() {
        var opening = connecting()
        _ = opening.connectFailed(portInUse: false, reason: "Connection refused")
        #expect(opening.end() == .close(giveBack: .nothing))
        #expect(opening.connected() == .close(giveBack: .nothing))
    }
}
