import Testing
import ZoneLinkTestSupport
import ZoneLinkCore
@testable import ZoneLinkGateway

@Suite struct NATTableKeyTests {
    @Test func sameClientInTwoVPCsIsTwoFlows() throws {
        var table = NATTable()
        let one = try table.open(key(vpc: "vpc-1"))
        let three = try table.open(key(vpc: "vpc-3"))
        #expect(table.count == 2)
        #expect(one.binding.nat != three.binding.nat)
        #expect(one.binding.nat.address == three.binding.nat.address)
        #expect(table.flow(key(vpc: "vpc-1")) == one)
        #expect(table.flow(key(vpc: "vpc-3")) == three)
    }

    @Test func protocolAndENIArePartOfTheKey() throws {
        var table = NATTable()
        try table.open(key(.tcp))
        try table.open(key(.udp))
        try table.open(key(.tcp, eni: "10.10.2.50:443"))
        #expect(table.count == 3)
        #expect(table.flow(key(.tcp, client: "10.10.2.1:40001")) == nil)
    }

    @Test func udpReopenReturnsTheSameFlowAndTouchesIt() throws {
        var table = NATTable()
        let first = try table.open(key(.udp), at: at(0))
        let again = try table.open(key(.udp), target: ep("192.168.24.12:80"), at: at(30))
        #expect(table.count == 1)
        #expect(again.binding == first.binding)
        #expect(again.created == at(0))
        #expect(again.lastActivity == at(30))
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .udp, nat: seedNAT[0]) == 1)
    }

    @Test func openRecordsWhatTheShellNeeds() throws {
        var table = NATTable()
        let flow = try table.open(
            key(), target: seedTarget, providerVPC: "vpc-2", natAddresses: seedNAT, endpoint: "ep-consumer1",
            loadBalancer: "clb-1", backend: 1, now: at(5))
        #expect(flow.key == key())
        #expect(flow.binding.providerVPC == "vpc-2")
        #expect(flow.binding.target == seedTarget)
        #expect(flow.endpoint == "ep-consumer1")
        #expect(flow.loadBalancer == "clb-1")
        #expect(flow.backend == 1)
        #expect(flow.created == at(5) && flow.lastActivity == at(5))
        #expect(flow.bytesFromClient == 0 && flow.bytesFromTarget == 0)
        #expect(!flow.clientToTargetClosed && !flow.targetToClientClosed && !flow.isClosed)
        #expect(flow.age(at: at(65)) == .seconds(60))
    }
}

@Suite struct NATPortAllocationTests {
    @Test func portsAreDistinctAndInRange() throws {
        var table = NATTable(portRange: 20000...20999)
        var ports = Set<UInt16>()
        for n in 0..<500 {
            let flow = try table.open(key(client: "10.10.2.1:\(30000 + n)"))
            #expect((20000...20999).contains(flow.binding.nat.port))
            ports.insert(flow.binding.nat.port)
        }
        #expect(ports.count == 500)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: seedNAT[0]) == 500)
    }

    @Test func poolsArePerProviderVPCProtocolAndAddress() throws {
        var table = NATTable(portRange: 5000...5009)
        let tcp = try table.open(key(.tcp))
        let udp = try table.open(key(.udp))
        let otherVPC = try table.open(key(.tcp, client: "10.10.2.1:40001"), providerVPC: "vpc-4", loadBalancer: "clb-4")
        let otherAddress = try table.open(key(.tcp, client: "10.10.2.1:40002"), nat: [ip("192.168.24.241")])
        for flow in [tcp, udp, otherVPC, otherAddress] { #expect(flow.binding.nat.port == 5000) }
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: seedNAT[0]) == 1)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .udp, nat: seedNAT[0]) == 1)
        #expect(table.portsInUse(providerVPC: "vpc-4", protocol: .tcp, nat: seedNAT[0]) == 1)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: ip("192.168.24.241")) == 1)
    }

    @Test func newFlowsRotateOverNATAddresses() throws {
        var table = NATTable()
        let nat = [ip("192.168.24.240"), ip("192.168.24.241"), ip("192.168.24.242")]
        var used: [IPv4Address] = []
        for n in 0..<6 {
            used.append(try table.open(key(client: "10.10.2.1:\(40000 + n)"), nat: nat).binding.nat.address)
        }
        #expect(used == nat + nat)
        for address in nat { #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: address) == 2) }
    }

    @Test func aFullAddressIsSkipped() throws {
        var table = NATTable(portRange: 7000...7003)
        let nat = [ip("192.168.24.240"), ip("192.168.24.241")]
        // Fill the first address through another load balancer of the same VPC that uses it alone.
        for n in 0..<4 { try table.open(key(client: "10.10.2.9:\(n + 1)"), nat: [nat[0]], loadBalancer: "clb-9") }
        for n in 0..<4 {
            let flow = try table.open(key(client: "10.10.2.1:\(40000 + n)"), nat: nat)
            #expect(flow.binding.nat.address == nat[1])
        }
        #expect(throws: NATError.portsExhausted(providerVPC: "vpc-2", natAddresses: nat, protocol: .tcp)) {
            try table.open(key(client: "10.10.2.1:50000"), nat: nat)
        }
    }

    @Test func nextFitDoesNotReuseAFreedPortAtOnce() throws {
        var table = NATTable(portRange: 6000...6009)
        let first = try table.open(key(client: "10.10.2.1:1"))
        try table.open(key(client: "10.10.2.1:2"))
        table.remove(first.key)
        let third = try table.open(key(client: "10.10.2.1:3"))
        #expect(first.binding.nat.port == 6000)
        #expect(third.binding.nat.port == 6002)
    }

    @Test func exhaustionRefusesCountsAndRecovers() throws {
        var table = NATTable(portRange: 2000...2003)
        var flows: [Flow] = []
        for n in 0..<4 { flows.append(try table.open(key(client: "10.10.2.1:\(40000 + n)"))) }
        #expect(Set(flows.map(\.binding.nat.port)) == [2000, 2001, 2002, 2003])
        #expect(table.refusedForExhaustion == 0)

        let fifth = key(client: "10.10.2.1:40004")
        #expect(throws: NATError.portsExhausted(providerVPC: "vpc-2", natAddresses: seedNAT, protocol: .tcp)) {
            try table.open(fifth)
        }
        #expect(table.refusedForExhaustion == 1)
        #expect(throws: NATError.self) { try table.open(fifth) }
        #expect(table.refusedForExhaustion == 2)
        #expect(table.count == 4)

        let removed = table.remove(flows[1].key)
        let freed = try #require(removed)
        let recovered = try table.open(fifth)
        #expect(recovered.binding.nat == freed.binding.nat)
        #expect(table.refusedForExhaustion == 2)
        // Other protocols have their own ports.
        #expect(try table.open(key(.udp)).binding.nat.port == 2000)
    }

    @Test func exhaustionTellsTheOperatorWhatToDo() {
        let error = NATError.portsExhausted(
            providerVPC: "vpc-2", natAddresses: [ip("192.168.24.240"), ip("192.168.24.241")], protocol: .tcp)
        #expect(error.description.contains("no free tcp NAT port in vpc-2 on 192.168.24.240, 192.168.24.241"))
        #expect(error.description.contains("add natAddresses"))
        #expect(error.description.contains("widen the NAT port range"))
    }

    @Test func noNATAddressesIsAnErrorNotACrash() {
        var table = NATTable()
        #expect(throws: NATError.noNATAddresses(providerVPC: "vpc-2", loadBalancer: "clb-1")) {
            try table.open(key(), nat: [])
        }
        #expect(table.count == 0)
    }
}

@Suite struct NATExpiryTests {
    @Test func defaultTimeoutsAre900SecondsForTCPAnd60ForUDP() throws {
        var table = NATTable()
        try table.open(key(.tcp), at: at(0))
        try table.open(key(.udp), at: at(0))
        #expect(table.expire(now: at(59)).isEmpty)
        #expect(table.expire(now: at(60)).map(\.key) == [key(.udp)])
        #expect(table.expire(now: at(899)).isEmpty)
        #expect(table.expire(now: at(900)).map(\.key) == [key(.tcp)])
        #expect(table.count == 0)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: seedNAT[0]) == 0)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .udp, nat: seedNAT[0]) == 0)
        #expect(table.nextDeadline == nil)
    }

    @Test func customTimeouts() throws {
        var table = NATTable(tcpIdleTimeout: .seconds(30), udpIdleTimeout: .milliseconds(1500))
        try table.open(key(.tcp), at: at(10))
        try table.open(key(.udp), at: at(10))
        #expect(table.expire(now: .milliseconds(11_499)).isEmpty)
        #expect(table.expire(now: .milliseconds(11_500)).map(\.key) == [key(.udp)])
        #expect(table.expire(now: at(39)).isEmpty)
        #expect(table.expire(now: at(40)).map(\.key) == [key(.tcp)])
    }

    @Test func activityPostponesExpiry() throws {
        var table = NATTable()
        try table.open(key(.udp), at: at(0))
        let counted = table.recordTraffic(key(.udp), fromClient: 100, fromTarget: 300, now: at(50))
        #expect(counted)
        #expect(table.expire(now: at(60)).isEmpty)
        #expect(table.expire(now: at(109)).isEmpty)
        let countedAgain = table.recordTraffic(key(.udp), fromClient: 20, now: at(100))
        #expect(countedAgain)
        #expect(table.expire(now: at(159)).isEmpty)
        let expired = table.expire(now: at(160))
        #expect(expired.count == 1)
        #expect(expired.first?.bytesFromClient == 120)
        #expect(expired.first?.bytesFromTarget == 300)
        #expect(expired.first?.lastActivity == at(100))
        let countedAfterExpiry = table.recordTraffic(key(.udp), fromClient: 1, now: at(161))
        #expect(!countedAfterExpiry)
    }

    @Test func reopeningPostponesExpiry() throws {
        var table = NATTable()
        try table.open(key(.udp), at: at(0))
        try table.open(key(.udp), at: at(40))
        #expect(table.expire(now: at(99)).isEmpty)
        #expect(table.expire(now: at(100)).count == 1)
    }

    @Test func aRemovedFlowsOldDeadlineDoesNotExpireItsSuccessor() throws {
        var table = NATTable()
        try table.open(key(.udp), at: at(0))
        table.remove(key(.udp))
        try table.open(key(.udp), at: at(30))
        #expect(table.expire(now: at(60)).isEmpty)
        #expect(table.flow(key(.udp)) != nil)
        #expect(table.expire(now: at(90)).count == 1)
    }

    @Test func onlyDueFlowsExpireAmongMany() throws {
        var table = NATTable()
        for n in 0..<10_000 {
            try table.open(key(.udp, client: "10.10.\(n / 250).\(n % 250 + 1):5000"), at: .milliseconds(n))
        }
        let expired = table.expire(now: .milliseconds(60_000 + 4_999))
        #expect(expired.count == 5_000)
        #expect(table.count == 5_000)
        #expect(table.nextDeadline == .milliseconds(65_000))
        #expect(table.expire(now: at(70)).count == 5_000)
    }

    @Test func churnDoesNotConfuseExpiry() throws {
        // Many short flows removed before their deadline leave stale queue entries behind;
        // the table drops them (rebuild) and still expires exactly the live flows.
        var table = NATTable()
        for n in 0..<5_000 {
            let k = key(client: "10.10.\(n / 250).\(n % 250 + 1):1000")
            try table.open(k, at: at(0))
            table.remove(k)
        }
        try table.open(key(), at: at(1))
        #expect(table.expire(now: at(900)).isEmpty)
        #expect(table.expire(now: at(901)).map(\.key) == [key()])
    }
}

@Suite struct NATHalfCloseTests {
    @Test func oneClosedDirectionKeepsTheFlowBothRemoveIt() throws {
        var table = NATTable()
        let flow = try table.open(key(), at: at(0))
        #expect(table.closeDirection(key(), .clientToTarget, now: at(1)) == nil)
        let halfClosed = try #require(table.flow(key()))
        #expect(halfClosed.clientToTargetClosed && !halfClosed.targetToClientClosed)
        // Data still flows the other way.
        let counted = table.recordTraffic(key(), fromTarget: 512, now: at(2))
        #expect(counted)

        let removed = table.closeDirection(key(), .targetToClient, now: at(3))
        let closed = try #require(removed)
        #expect(closed.isClosed)
        #expect(closed.bytesFromTarget == 512)
        #expect(table.flow(key()) == nil)
        #expect(table.key(forNAT: flow.binding.nat, providerVPC: "vpc-2", protocol: .tcp) == nil)
        #expect(table.portsInUse(providerVPC: "vpc-2", protocol: .tcp, nat: seedNAT[0]) == 0)
    }

    @Test func closingEitherDirectionFirstWorks() throws {
        var table = NATTable()
        try table.open(key())
        #expect(table.closeDirection(key(), .targetToClient, now: at(1)) == nil)
        #expect(table.closeDirection(key(), .targetToClient, now: at(2)) == nil)
        #expect(table.closeDirection(key(), .clientToTarget, now: at(3)) != nil)
        #expect(table.closeDirection(key(), .clientToTarget, now: at(4)) == nil)
    }

    @Test func removeFreesThePort() throws {
        var table = NATTable(portRange: 3000...3000)
        let flow = try table.open(key())
        #expect(table.remove(key()) == flow)
        #expect(table.remove(key()) == nil)
        #expect(try table.open(key(client: "10.10.2.1:1")).binding.nat.port == 3000)
    }
}

@Suite struct NATSecondIndexTests {
    @Test func natEndpointFindsTheConsumerKey() throws {
        var table = NATTable()
        let one = try table.open(key(vpc: "vpc-1"))
        let three = try table.open(key(vpc: "vpc-3"))
        #expect(table.key(forNAT: one.binding.nat, providerVPC: "vpc-2", protocol: .tcp) == key(vpc: "vpc-1"))
        #expect(table.key(forNAT: three.binding.nat, providerVPC: "vpc-2", protocol: .tcp) == key(vpc: "vpc-3"))
        #expect(table.key(forNAT: one.binding.nat, providerVPC: "vpc-2", protocol: .udp) == nil)
        #expect(table.key(forNAT: one.binding.nat, providerVPC: "vpc-4", protocol: .tcp) == nil)
    }

    @Test func indexesAgreeThroughARandomHistory() throws {
        var table = NATTable(portRange: 9000...9031, udpIdleTimeout: .seconds(5))
        var random = SplitMix64(seed: 7)
        let nat = [ip("192.168.24.240"), ip("192.168.24.241")]
        for step in 0..<3_000 {
            let now = Moment.milliseconds(step * 100)
            let k = key(
                random.next(2) == 0 ? .tcp : .udp, vpc: random.next(2) == 0 ? "vpc-1" : "vpc-3",
                client: "10.10.2.\(random.next(8) + 1):\(random.next(16) + 1)")
            switch random.next(6) {
            case 0, 1, 2: _ = try? table.open(k, nat: nat, at: now)
            case 3: table.remove(k)
            case 4: table.closeDirection(k, random.next(2) == 0 ? .clientToTarget : .targetToClient, now: now)
            default: _ = table.expire(now: now)
            }
            try checkConsistency(table, nat: nat)
        }
    }

    private func checkConsistency(_ table: NATTable, nat: [IPv4Address]) throws {
        let flows = table.flows
        #expect(flows.count == table.count)
        for flow in flows {
            let found = table.key(forNAT: flow.binding.nat, providerVPC: flow.binding.providerVPC, protocol: flow.key.proto)
            guard found == flow.key else {
                Issue.record("NAT \(flow.binding.nat) maps to \(String(describing: found)), not \(flow.key)")
                return
            }
        }
        var inUse = 0
        for proto in TransportProtocol.allCases {
            for address in nat { inUse += table.portsInUse(providerVPC: "vpc-2", protocol: proto, nat: address) }
        }
        #expect(inUse == flows.count)
        #expect(Set(flows.map { "\($0.key.proto)\($0.binding.nat)" }).count == flows.count)
    }

    @Test func snapshotListsOldestFirst() throws {
        var table = NATTable()
        for n in 0..<5 { try table.open(key(client: "10.10.2.1:\(100 - n)"), at: at(n)) }
        #expect(table.flows.map(\.created) == (0..<5).map(at))
    }
}

extension SplitMix64 {
    /// A number below `bound`: a "random" history that is the same on every run.
    mutating func next(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
