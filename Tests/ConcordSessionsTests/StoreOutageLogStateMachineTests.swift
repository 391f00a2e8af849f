import Testing

@testable import ConcordSessions

/// The outage log decides from `now` alone: these tests move a synthetic instant instead of sleeping.
@Suite(.timeLimit(.minutes(3))) struct StoreOutageLogStateMachineTests {
    private let start = ContinuousClock.now

    private func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test func oneWarningThenOneSummaryPerIntervalThenOneRecovery() {
        var log = StoreOutageLogStateMachine(summaryInterval: .seconds(10), recoveryQuietPeriod: .seconds(1))
        #expect(log.succeeded(now: at(0)) == .none)
        #expect(log.failed(now: at(100)) == .unreachable)
        #expect(!log.isReachable)
        // 99 more failures inside the first 10 s: silent.
        for index in 1..<100 { #expect(log.failed(now: at(100 + index * 50)) == .none) }
        // The first failure 10 s after the warning reports the 99 silent ones and itself.
        #expect(log.failed(now: at(10_100)) == .stillUnreachable(failures: 100, over: .seconds(10)))
        #expect(log.failed(now: at(12_000)) == .none)
        #expect(log.failed(now: at(15_000)) == .none)
        // Sparse traffic: the next summary comes with the first failure after the interval and says how long it was.
        #expect(log.failed(now: at(25_100)) == .stillUnreachable(failures: 3, over: .seconds(15)))
        // Redis answers 2 s after the last failure: one notice counting every failure of the outage.
        #expect(log.succeeded(now: at(27_100)) == .recovered(failures: 104, failingFor: .seconds(25), quietFor: .seconds(2)))
        #expect(log.isReachable)
        #expect(log.succeeded(now: at(27_200)) == .none)
        // A new outage starts with a new warning.
        #expect(log.failed(now: at(30_000)) == .unreachable)
    }

    @Test func aPartialOutageIsSummarisedNotFlippedPerRequest() {
        var log = StoreOutageLogStateMachine(summaryInterval: .seconds(10), recoveryQuietPeriod: .seconds(1))
        #expect(log.failed(now: at(0)) == .unreachable)
        // One node down, the others answering: successes and failures alternate every 100 ms for 20 s.
        var actions: [StoreOutageLogStateMachine.Action] = []
        for step in 1...200 {
            let now = at(step * 100)
            actions.append(step.isMultiple(of: 2) ? log.failed(now: now) : log.succeeded(now: now))
        }
        #expect(actions.filter { $0 != .none } == [
            .stillUnreachable(failures: 50, over: .seconds(10)), .stillUnreachable(failures: 50, over: .seconds(10)),
        ])
        #expect(!log.isReachable)
        // Only a full quiet period without failures ends it.
        #expect(log.succeeded(now: at(20_900)) == .none)
        #expect(log.succeeded(now: at(21_000)) == .recovered(failures: 101, failingFor: .seconds(20), quietFor: .seconds(1)))
    }

    @Test func aSingleFailureRecoversAfterTheQuietPeriod() {
        var log = StoreOutageLogStateMachine(summaryInterval: .seconds(10), recoveryQuietPeriod: .milliseconds(500))
        #expect(log.failed(now: at(0)) == .unreachable)
        #expect(log.succeeded(now: at(499)) == .none)
        #expect(log.succeeded(now: at(500)) == .recovered(failures: 1, failingFor: .zero, quietFor: .milliseconds(500)))
        #expect(log.failed(now: at(501)) == .unreachable)
        // No traffic for ten minutes after a 3-s outage: the notice says 3 s of failures, then 600 s of quiet.
        #expect(log.failed(now: at(3_501)) == .none)
        #expect(log.succeeded(now: at(603_501)) == .recovered(failures: 2, failingFor: .seconds(3), quietFor: .seconds(600)))
    }
}
