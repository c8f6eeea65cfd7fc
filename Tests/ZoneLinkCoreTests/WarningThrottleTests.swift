import Testing
import ZoneLinkCore

@Suite struct WarningThrottleTests {
    @Test func firstOfAKindIsLoggedThenOnePerInterval() {
        var throttle = WarningThrottle(interval: .seconds(10))
        #expect(throttle.record("flow.refused", at: .seconds(0)) == .log(count: 1))
        for second in 1...9 {
            #expect(throttle.record("flow.refused", at: .seconds(second)) == .suppress)
        }
        #expect(throttle.held("flow.refused") == 9)
        #expect(throttle.record("flow.refused", at: .seconds(10)) == .log(count: 10))
        #expect(throttle.record("flow.refused", at: .seconds(11)) == .suppress)
    }

    @Test func kindsAreCountedApart() {
        var throttle = WarningThrottle(interval: .seconds(10))
        #expect(throttle.record("a", at: .zero) == .log(count: 1))
        #expect(throttle.record("b", at: .milliseconds(1)) == .log(count: 1))
        #expect(throttle.record("a", at: .milliseconds(2)) == .suppress)
        #expect(throttle.held("b") == 0)
    }

    @Test func threeThousandRefusalsInTenSecondsMakeTwoLines() {
        var throttle = WarningThrottle()
        var lines = 0
        for i in 0..<3000 where throttle.record("flow.refused", at: .milliseconds(i * 4)) != .suppress { lines += 1 }
        #expect(lines == 2)
    }
}
