import Testing

@testable import ConcordPostgres

@Suite struct PostgresOutageGateTests {
    @Test func oneStatementWaitsWhileTheServerCannotBeReached() {
        let gate = PostgresOutageGate(quietPeriod: .seconds(1))
        let start = ContinuousClock.now
        #expect(gate.admit(lastConnectFailed: false, now: start) == .go)
        // A failure and no success yet: one probe, the rest refused until it ends.
        #expect(gate.admit(lastConnectFailed: true, now: start) == .probe)
        #expect(gate.admit(lastConnectFailed: true, now: start) == .refuse)
        #expect(gate.admit(lastConnectFailed: false, now: start) == .go, "no failure: nothing refused")
        gate.probeEnded()
        #expect(gate.admit(lastConnectFailed: true, now: start) == .probe)
        gate.probeEnded()
        // Statements succeeding within the quiet period: a connect failure (pool growth) refuses nothing.
        gate.succeeded(now: start)
        #expect(gate.admit(lastConnectFailed: true, now: start + .milliseconds(500)) == .go)
        #expect(gate.admit(lastConnectFailed: true, now: start + .milliseconds(500)) == .go)
        #expect(gate.admit(lastConnectFailed: true, now: start + .seconds(2)) == .probe)
        #expect(gate.admit(lastConnectFailed: true, now: start + .seconds(2)) == .refuse)
    }
}
