/// Decides what is logged about a store outage (``StoreOutageLog``: the Redis, PostgreSQL and SQLite stores, and
/// the session middleware's 503s), so an outage under load costs a few log lines instead of one per failed request:
///
/// - the first failure while the backend was reachable → one warning with its error (``Action/unreachable``);
/// - later failures are counted; the first one at least `summaryInterval` after the last line → one summary
///   (``Action/stillUnreachable(failures:over:)``: "N store operations failed in the last 10 s");
/// - the first success once no request has failed for `recoveryQuietPeriod` → one notice
///   (``Action/recovered(failures:failingFor:quietFor:)``). The quiet period keeps a partial outage (one cluster node down, the
///   others answering; an SQLite file whose writes fail while reads succeed) from flipping between "unreachable" and "recovered" on every request; it is summarised
///   instead.
///
/// Pure: it takes `now` and returns an action, so it is tested without sleeping; the store carries the actions out.
package struct StoreOutageLogStateMachine: Sendable {
    package enum Action: Equatable, Sendable {
        case none
        /// The backend just became unreachable: log the error once.
        case unreachable
        /// Still unreachable: `failures` store operations failed during the last `over`.
        case stillUnreachable(failures: Int, over: Duration)
        /// Reachable again: `failures` store operations failed during the whole outage, from the first to the last
        /// over `failingFor`, and none in the `quietFor` since. (Not "down for first failure → first answer": with
        /// no traffic after a 3-s outage that read as ten minutes, 2026-12-03.)
        case recovered(failures: Int, failingFor: Duration, quietFor: Duration)
    }

    private enum State: Sendable {
        /// The backend answers; nothing to report.
        case reachable
        /// The backend failed at `since`. `failures` counts every failed request of the outage (the first included),
        /// `unreported` those since the last line (at `lastLine`), `lastFailure` when the latest one failed.
        case unreachable(
            since: ContinuousClock.Instant, lastLine: ContinuousClock.Instant, lastFailure: ContinuousClock.Instant,
            failures: Int, unreported: Int)
    }

    package let summaryInterval: Duration
    package let recoveryQuietPeriod: Duration
    private var state = State.reachable

    package init(summaryInterval: Duration = .seconds(10), recoveryQuietPeriod: Duration = .seconds(1)) {
        self.summaryInterval = summaryInterval
        self.recoveryQuietPeriod = recoveryQuietPeriod
    }

    package var isReachable: Bool { if case .reachable = state { true } else { false } }

    /// A request failed because the backend could not be reached.
    package mutating func failed(now: ContinuousClock.Instant) -> Action {
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

    /// A request reached the backend (whatever its outcome: a conflict or a corrupt record still means it answered).
    package mutating func succeeded(now: ContinuousClock.Instant) -> Action {
        guard case .unreachable(let since, _, let lastFailure, let failures, _) = state,
            now - lastFailure >= recoveryQuietPeriod
        else { return .none }
        state = .reachable
        return .recovered(failures: failures, failingFor: lastFailure - since, quietFor: now - lastFailure)
    }
}
