import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct HealthStateMachineTests {
    @Test func fallsAfterConsecutiveFailuresOnly() {
        var health = HealthStateMachine(rise: 2, fall: 3, ejectAfter: 1)
        #expect(health.recordProbe(success: false) == nil)
        #expect(health.recordProbe(success: false) == nil)
        #expect(health.recordProbe(success: true) == nil)  // the streak resets
        #expect(health.recordProbe(success: false) == nil)
        #expect(health.recordProbe(success: false) == nil)
        #expect(health.recordProbe(success: false) == .wentDown)
        #expect(!health.isUp)
        #expect(health.recordProbe(success: false) == nil)  // one flip, one report
    }

    @Test func risesAfterConsecutiveSuccesses() {
        var health = HealthStateMachine(rise: 2, fall: 1, ejectAfter: 1, isUp: false)
        #expect(health.recordProbe(success: true) == nil)
        #expect(health.recordProbe(success: false) == nil)
        #expect(health.recordProbe(success: true) == nil)
        #expect(health.recordProbe(success: true) == .wentUp)
        #expect(health.isUp)
    }

    /// A backend added while running is out until its first probe, which decides alone (Envoy's `first_check`).
    @Test func aPendingBackendsFirstProbeDecidesAlone() {
        var joining = HealthStateMachine.pending(rise: 3, fall: 3, ejectAfter: 1)
        #expect(!joining.isUp && joining.stateName == "pending")
        #expect(joining.recordConnectFailure() == nil && joining.isPending)  // not a verdict
        #expect(joining.recordProbe(success: true) == .joined)
        #expect(joining.isUp && joining.stateName == "up")
        #expect(joining.recordProbe(success: false) == nil)  // then `fall` as usual

        var failing = HealthStateMachine.pending(rise: 2, fall: 3, ejectAfter: 1)
        #expect(failing.recordProbe(success: false) == .failedFirstCheck)
        #expect(!failing.isUp && failing.stateName == "down")
        #expect(failing.recordProbe(success: true) == nil)  // then `rise` as usual
        #expect(failing.recordProbe(success: true) == .joined)  // up for the first time: it joins, not "again"
        #expect(failing.recordProbe(success: false) == nil)
        #expect(failing.recordProbe(success: false) == nil)
        #expect(failing.recordProbe(success: false) == .wentDown)
        #expect(failing.recordProbe(success: true) == nil)
        #expect(failing.recordProbe(success: true) == .wentUp)  // now it returns
    }

    /// Added when no other backend was up: up at once, and its first probe still decides alone.
    @Test func aProvisionalBackendsFirstProbeDecidesAlone() {
        var failing = HealthStateMachine.provisional(rise: 2, fall: 3, ejectAfter: 1)
        #expect(failing.isUp && failing.hasJoined && failing.stateName == "up" && failing.isProvisional)
        #expect(failing.recordProbe(success: false) == .failedFirstCheck)  // not after `fall` = 3
        #expect(!failing.isUp && !failing.isProvisional && failing.stateName == "down")
        #expect(failing.recordProbe(success: true) == nil)
        #expect(failing.recordProbe(success: true) == .wentUp)  // it had joined: it returns

        var passing = HealthStateMachine.provisional(rise: 2, fall: 3, ejectAfter: 1)
        #expect(passing.recordProbe(success: true) == .confirmed)
        #expect(passing.isUp && !passing.isProvisional)
        #expect(passing.recordProbe(success: false) == nil)  // then `fall` as usual
    }

    @Test func passiveEjectionAfterConnectFailures() {
        var health = HealthStateMachine(rise: 1, fall: 5, ejectAfter: 2)
        #expect(health.recordConnectFailure() == nil)
        health.recordConnectSuccess()
        #expect(health.recordConnectFailure() == nil)
        #expect(health.recordConnectFailure() == .wentDown)
        #expect(health.recordProbe(success: true) == .wentUp)
    }

    @Test func passiveEjectionCanBeOff() {
        var health = HealthStateMachine(rise: 1, fall: 1, ejectAfter: 0)
        for _ in 0..<10 { #expect(health.recordConnectFailure() == nil) }
        #expect(health.isUp)
    }
}
