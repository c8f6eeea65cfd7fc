import Testing
import ZoneLinkCore
import ZoneLinkGateway

@Suite struct HealthStateTests {
    @Test func startsHealthyByDefault() {
        #expect(HealthState(healthyThreshold: 3, unhealthyThreshold: 3).isHealthy)
        #expect(!HealthState(healthyThreshold: 3, unhealthyThreshold: 3, initiallyHealthy: false).isHealthy)
    }

    @Test func threeFailuresMarkUnhealthyExactlyAtTheThird() {
        var state = HealthState(healthyThreshold: 3, unhealthyThreshold: 3)
        #expect(state.record(.failure) == nil)
        #expect(state.record(.failure) == nil)
        #expect(state.isHealthy)
        #expect(state.record(.failure) == .becameUnhealthy)
        #expect(!state.isHealthy)
        #expect(state.record(.failure) == nil)  // reported once
        #expect(state.record(.failure) == nil)
        #expect(!state.isHealthy)
    }

    @Test func aSuccessInBetweenResetsTheCount() {
        var state = HealthState(healthyThreshold: 3, unhealthyThreshold: 3)
        let results = [ProbeResult.failure, .failure, .success, .failure, .failure].map { state.record($0) }
        #expect(results.allSatisfy { $0 == nil })
        #expect(state.isHealthy)
        #expect(state.record(.failure) == .becameUnhealthy)
    }

    @Test func threeSuccessesMarkHealthyAgain() {
        var state = HealthState(healthyThreshold: 3, unhealthyThreshold: 2)
        _ = state.record(.failure)
        #expect(state.record(.failure) == .becameUnhealthy)
        #expect(state.record(.success) == nil)
        #expect(state.record(.success) == nil)
        #expect(state.record(.failure) == nil)  // resets
        #expect(state.record(.success) == nil)
        #expect(state.record(.success) == nil)
        #expect(state.record(.success) == .becameHealthy)
        #expect(state.isHealthy)
        #expect(state.record(.success) == nil)
    }

    @Test func initiallyUnhealthyNeedsTheHealthyThreshold() {
        var state = HealthState(HealthCheck(healthyThreshold: 2, unhealthyThreshold: 5), initiallyHealthy: false)
        #expect(state.record(.success) == nil)
        #expect(state.record(.success) == .becameHealthy)
        #expect(state.unhealthyThreshold == 5)
    }

    @Test func thresholdOfOneOrLessDecidesOnEachProbe() {
        var state = HealthState(healthyThreshold: 0, unhealthyThreshold: 1)
        #expect(state.record(.failure) == .becameUnhealthy)
        #expect(state.record(.success) == .becameHealthy)
    }
}
