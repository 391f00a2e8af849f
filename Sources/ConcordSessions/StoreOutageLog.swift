import Logging
import Synchronization

/// Logs a store outage as ``StoreOutageLogStateMachine`` decides: one warning when the backend stops answering, a
/// summary every `summaryInterval` while it does not, one notice when it answers again after a quiet period — not
/// one line per failed request, and no "unavailable"/"answers again" pair per request while only some requests
/// fail. Used by every store that can be out (Redis, PostgreSQL, SQLite) and by the session middleware for its 503s.
package final class StoreOutageLog: Sendable {
    private let machine: Mutex<StoreOutageLogStateMachine>
    /// Whether `machine` is in an outage: set and cleared under its lock, read without it, so a success while all
    /// is well costs one relaxed load.
    private let inOutage = Atomic<Bool>(false)
    /// "redis session store", "PostgreSQL session store", …: how the lines name the backend.
    private let subject: String
    /// What the first line says happens meanwhile ("requests fail with unavailable until it answers").
    private let meanwhile: String
    /// What the summaries count, singular and plural ("store operation", "store operations").
    private let counted: (one: String, many: String)
    private let metadata: Logger.Metadata

    package init(
        subject: String, meanwhile: String = "requests fail with unavailable until it answers",
        counted: (one: String, many: String) = ("store operation", "store operations"), metadata: Logger.Metadata = [:],
        summaryInterval: Duration = .seconds(10), recoveryQuietPeriod: Duration = .seconds(1)
    ) {
        self.machine = Mutex(StoreOutageLogStateMachine(summaryInterval: summaryInterval, recoveryQuietPeriod: recoveryQuietPeriod))
        self.subject = subject
        self.meanwhile = meanwhile
        self.counted = counted
        self.metadata = metadata
    }

    /// Whether no outage is under way (the last failure, if any, was followed by the quiet period and a success).
    package var isReachable: Bool { !inOutage.load(ordering: .relaxed) }

    /// An operation could not reach the backend.
    package func failed(_ error: SessionStoreError, logger: Logger) {
        let action = machine.withLock { log in
            let action = log.failed(now: .now)
            inOutage.store(true, ordering: .relaxed)
            return action
        }
        report(action, error: error, logger: logger)
    }

    /// An operation reached the backend (whatever its outcome).
    package func succeeded(logger: Logger) {
        // A success racing with a first failure may skip the log: it counts as having come before that failure.
        guard inOutage.load(ordering: .relaxed) else { return }
        let action = machine.withLock { log in
            let action = log.succeeded(now: .now)
            if log.isReachable { inOutage.store(false, ordering: .relaxed) }
            return action
        }
        report(action, error: nil, logger: logger)
    }

    private func report(_ action: StoreOutageLogStateMachine.Action, error: SessionStoreError?, logger: Logger) {
        var metadata = self.metadata
        if let error { metadata["error"] = "\(error)" }
        func count(_ n: Int) -> String { "\(n) \(n == 1 ? counted.one : counted.many)" }
        switch action {
        case .none:
            break
        case .unreachable:
            logger.warning("\(subject) unreachable; \(meanwhile)", metadata: metadata)
        case .stillUnreachable(let failures, let interval):
            logger.warning("\(subject) still unreachable: \(count(failures)) failed in the last \(Self.seconds(interval)) s", metadata: metadata)
        case .recovered(let failures, let failingFor, let quietFor):
            logger.notice(
                "\(subject) reachable again: \(count(failures)) failed over \(Self.seconds(failingFor)) s, none in the \(Self.seconds(quietFor)) s since",
                metadata: metadata)
        }
    }

    /// Whole seconds, rounded, for log lines.
    private static func seconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds + (attoseconds >= 500_000_000_000_000_000 ? 1 : 0)
    }
}
