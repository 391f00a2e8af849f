/// Decides what ``RedisSessionStore`` logs about a Redis outage, so an outage under load costs a few log lines
/// instead of one per failed request:
///
/// - the first failure while Redis was reachable → one warning with its error (``Action/unreachable``);
/// - later failures are counted; the first one at least `summaryInterval` after the last line → one summary
///   (``Action/stillUnreachable(failures:over:)``: "N store operations failed in the last 10 s");
/// - the first success once no request has failed for `recoveryQuietPeriod` → one notice
///   (``Action/recovered(failures:failingFor:quietFor:)``). The quiet period keeps a partial outage (one cluster node down, the
///   others answering) from flipping between "unreachable" and "recovered" on every request; it is summarised
///   instead.
///
/// Pure: it takes `now` and returns an action, so it is tested without sleeping; the store carries the actions out.
struct RedisOutageLogStateMachine: Sendable {
    enum Action: Equatable, Sendable {
        case none
        /// Redis just became unreachable: log the error once.
        case unreachable
        /// Still unreachable: `failures` store operations failed during the last `over`.
        case stillUnreachable(failures: Int, over: Duration)
        /// Reachable again: `failures` store operations failed during the whole outage, from the first to the last
        /// over `failingFor`, and none in the `quietFor` since. (Not "down for first failure → first answer": with
        /// no traffic after a 3-s outage that read as ten minutes, 2026-12-03.)
        case recovered(failures: Int, failingFor: Duration, quietFor: Duration)
    }

    private enum State: Sendable {
        /// Redis answers; nothing to report.
        case reachable
        /// Redis failed at `since`. `failures` counts every failed request of the outage (the first included),
        /// `unreported` those since the last line (at `lastLine`), `lastFailure` when the latest one failed.
        case unreachable(
            since: ContinuousClock.Instant, lastLine: ContinuousClock.Instant, lastFailure: ContinuousClock.Instant,
            failures: Int, unreported: Int)
    }

    let summaryInterval: Duration
    let recoveryQuietPeriod: Duration
    private var state = State.reachable

    init(summaryInterval: Duration = .seconds(10), recoveryQuietPeriod: Duration = .seconds(1)) {
        self.summaryInterval = summaryInterval
        self.recoveryQuietPeriod = recoveryQuietPeriod
    }

    var isReachable: Bool { if case .reachable = state { true } else { false } }

    /// A request failed because Redis could not be reached.
    mutating func failed(now: ContinuousClock.Instant) -> Action {
        switch state {
        case .reachable:
            state = .unreachable(since: now, lastLine: now, lastFailure: now, failures: 1, unreported: 0)
            return .unreachable
        case .unreachable(let since, let lastLine, _, let failures, let unreported):
            if now - lastLine >= summaryInterval {
                state = .unreachable(since: since, lastLine: now, lastFailure: now, failures: failures + 1, unreported: 0)
                return .stillUnreachable(failures: unreported + 1, over: now - lastLine)
            }
            state = .unreachable(
                since: since, lastLine: lastLine, lastFailure: now, failures: failures + 1, unreported: unreported + 1)
            return .none
        }
    }

    /// A request reached Redis (whatever its outcome: a conflict or a corrupt record still means Redis answered).
    mutating func succeeded(now: ContinuousClock.Instant) -> Action {
        guard case .unreachable(let since, _, let lastFailure, let failures, _) = state,
            now - lastFailure >= recoveryQuietPeriod
        else { return .none }
        state = .reachable
        return .recovered(failures: failures, failingFor: lastFailure - since, quietFor: now - lastFailure)
    }
}
