import Testing
import ZoneLinkCore
import ZoneLinkGateway

/// Picks `n` times with the given health, returning the sequence of chosen indexes.
private func picks(
    _ scheduler: inout BackendScheduler, _ n: Int, healthy: (Int) -> Bool = { _ in true },
    connections: (Int) -> Int = { _ in 0 }
) -> [Int?] {
    (0..<n).map { _ in scheduler.pick(healthy: healthy, connections: connections) }
}

private func longestRun(of value: Int, in sequence: [Int?]) -> Int {
    var longest = 0
    var run = 0
    for element in sequence {
        run = element == value ? run + 1 : 0
        longest = max(longest, run)
    }
    return longest
}

@Suite struct WeightedRoundRobinTests {
    @Test func equalWeightsAlternateExactly() {
        var scheduler = BackendScheduler(.wrr, weights: [100, 100])
        let sequence = picks(&scheduler, 400)
        #expect(sequence.filter { $0 == 0 }.count == 200)
        #expect(sequence.filter { $0 == 1 }.count == 200)
        #expect(zip(sequence, sequence.dropFirst()).allSatisfy { $0 != $1 })
    }

    @Test func weights300To100AreSmooth() {
        var scheduler = BackendScheduler(.wrr, weights: [300, 100])
        let sequence = picks(&scheduler, 400)
        #expect(sequence.filter { $0 == 0 }.count == 300)
        #expect(sequence.filter { $0 == 1 }.count == 100)
        #expect(longestRun(of: 0, in: sequence) <= 3)
        #expect(Array(sequence.prefix(4)) == [0, 0, 1, 0])
    }

    @Test func threeBackendsGetTheirShare() {
        var scheduler = BackendScheduler(.wrr, weights: [5, 1, 1])
        let sequence = picks(&scheduler, 700)
        #expect([0, 1, 2].map { index in sequence.filter { $0 == index }.count } == [500, 100, 100])
        #expect(Array(sequence.prefix(7)) == [0, 0, 1, 0, 2, 0, 0])  // nginx's documented order
    }

    @Test func weightZeroDrains() {
        var scheduler = BackendScheduler(.wrr, weights: [100, 0, 50])
        #expect(!picks(&scheduler, 300).contains(1))
    }

    @Test func unhealthyBackendsAreSkipped() {
        var scheduler = BackendScheduler(.wrr, weights: [100, 100, 100])
        let sequence = picks(&scheduler, 100, healthy: { $0 != 1 })
        #expect(!sequence.contains(1))
        #expect(sequence.filter { $0 == 0 }.count == 50)
    }

    @Test func allDownOrDrainedIsNil() {
        var down = BackendScheduler(.wrr, weights: [100, 100])
        #expect(picks(&down, 3, healthy: { _ in false }) == [nil, nil, nil])
        var drained = BackendScheduler(.wrr, weights: [0, 0])
        #expect(picks(&drained, 3) == [nil, nil, nil])
        var empty = BackendScheduler(.wrr, weights: [])
        #expect(picks(&empty, 1) == [nil])
    }

    @Test func builtFromAListener() {
        let listener = LoadBalancerListener(
            protocol: .tcp, port: 80, scheduler: .wlc,
            backends: [Backend(address: IPv4Address("192.168.24.200")!, weight: 3), Backend(address: IPv4Address("192.168.24.12")!)])
        let scheduler = BackendScheduler(listener: listener)
        #expect(scheduler.scheduler == .wlc)
        #expect(scheduler.weights == [3, 100])
    }
}

@Suite struct WeightedLeastConnectionsTests {
    @Test func picksTheLeastLoadedByWeight() {
        var scheduler = BackendScheduler(.wlc, weights: [100, 300])
        // 10/100 = 0.1 against 20/300 ≈ 0.067: the heavier one, despite more connections.
        #expect(scheduler.pick(healthy: { _ in true }, connections: { [10, 20][$0] }) == 1)
        // 10/100 = 0.1 against 40/300 ≈ 0.133.
        #expect(scheduler.pick(healthy: { _ in true }, connections: { [10, 40][$0] }) == 0)
    }

    @Test func followsConnectionCountsToTheWeightRatio() {
        var scheduler = BackendScheduler(.wlc, weights: [100, 300])
        var open = [0, 0]
        for _ in 0..<400 {
            let picked = scheduler.pick(healthy: { _ in true }, connections: { open[$0] })!
            open[picked] += 1
        }
        #expect(open == [100, 300])
    }

    @Test func tiesAlternate() {
        var scheduler = BackendScheduler(.wlc, weights: [100, 100])
        let sequence = picks(&scheduler, 6, connections: { _ in 5 })
        #expect(sequence == [0, 1, 0, 1, 0, 1])
    }

    @Test func drainedAndUnhealthyAreSkippedAllDownIsNil() {
        var scheduler = BackendScheduler(.wlc, weights: [0, 100, 100])
        #expect(!picks(&scheduler, 10).contains(0))
        #expect(picks(&scheduler, 4, healthy: { $0 != 2 }) == [1, 1, 1, 1])
        #expect(picks(&scheduler, 2, healthy: { _ in false }) == [nil, nil])
    }
}
