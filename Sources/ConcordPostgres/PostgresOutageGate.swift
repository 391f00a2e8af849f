import Synchronization

/// Which statements run while PostgreSQL cannot be reached. The pool's last connect attempt failed and no
/// statement has succeeded for `quietPeriod`: then every statement is refused at once, and the store's own probe
/// (one `SELECT 1` at a time, started by the first refusal) waits for a connection — the pool reconnects for it,
/// with its backoff — until one answers. Before 2026-12-03 the probe was a user's statement: under load the others
/// were refused, but one request after another each waited the whole operation timeout (2 s a page for a single
/// user, where Redis answers a refused connection in milliseconds); before that, every request of an outage piled
/// up for that long. A connect failure while statements still succeed (the pool growing against
/// `max_connections`, say) refuses nothing. A pure decision on what it is told; the store supplies the failure and
/// the time.
final class PostgresOutageGate: Sendable {
    enum Admission: Equatable {
        /// Run the statement as usual.
        case go
        /// Fail it at once, and start the store's probe: call ``probeEnded()`` when the probe stops.
        case refuseAndProbe
        /// Fail it at once: the store's probe is waiting for a connection.
        case refuse
    }

    private let quietPeriod: Duration
    private let lastSuccess = Mutex<ContinuousClock.Instant?>(nil)
    private let probing = Atomic<Bool>(false)

    init(quietPeriod: Duration = .seconds(1)) {
        self.quietPeriod = quietPeriod
    }

    func admit(lastConnectFailed: Bool, now: ContinuousClock.Instant = .now) -> Admission {
        guard lastConnectFailed else { return .go }
        if let success = lastSuccess.withLock({ $0 }), now - success < quietPeriod { return .go }
        return probing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged ? .refuseAndProbe : .refuse
    }

    func probeEnded() {
        probing.store(false, ordering: .releasing)
    }

    func succeeded(now: ContinuousClock.Instant = .now) {
        lastSuccess.withLock { $0 = now }
    }
}
