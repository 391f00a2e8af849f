import Testing

@testable import ConcordPostgres

@Suite struct PostgresOutageGateTests {
    @Test func statementsAreRefusedWhileTheStoresProbeWaits() {
        let gate = PostgresOutageGate(quietPeriod: .seconds(1))
        let start = ContinuousClock.now
        #expect(gate.admit(lastConnectFailed: false, now: start) == .go)
        // A failure and no success yet: refused, the first one starting the store's probe, until it ends.
        #expect(gate.admit(lastConnectFailed: true, now: start) == .refuseAndProbe)
        #expect(gate.admit(lastConnectFailed: true, now: start) == .refuse)
        #expect(gate.admit(lastConnectFailed: false, now: start) == .go, "no failure: nothing refused")
        gate.probeEnded()
        #expect(gate.admit(lastConnectFailed: true, now: start) == .refuseAndProbe)
        gate.probeEnded()
        // Statements succeeding within the quiet period: a connect failure (pool growth) refuses nothing.
        gate.succeeded(now: start)
        #expect(gate.admit(lastConnectFailed: true, now: start + .milliseconds(500)) == .go)
        #expect(gate.admit(lastConnectFailed: true, now: start + .milliseconds(500)) == .go)
        #expect(gate.admit(lastConnectFailed: true, now: start + .seconds(2)) == .refuseAndProbe)
        #expect(gate.admit(lastConnectFailed: true, now: start + .seconds(2)) == .refuse)
    }
}
