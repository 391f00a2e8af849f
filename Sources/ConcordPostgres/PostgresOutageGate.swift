import Synchronization

/// Who waits for a connection while PostgreSQL cannot be reached. The pool's last connect attempt failed and no
/// statement has succeeded for `quietPeriod`: then one statement at a time — the probe — waits for a connection
/// (the pool reconnects for it, with its backoff) and the others are refused at once, instead of each holding its
/// request for the whole operation timeout (2 s by default: under load, every request of an outage piled up for
/// that long; Redis answers a refused connection in milliseconds). A connect failure while statements still
/// succeed (the pool growing against `max_connections`, say) refuses nothing. A pure decision on what it is
/// told; the store supplies the failure and the time.
final class PostgresOutageGate: Sendable {
    enum Admission: Equatable {
        /// Run the statement as usual.
        case go
        /// Run it; it is the one statement waiting for a connection: call ``probeEnded()`` when it is done.
        case probe
        /// Fail it at once: another statement is already waiting for a connection.
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
        return probing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged ? .probe : .refuse
    }

    func probeEnded() {
        probing.store(false, ordering: .releasing)
    }

    func succeeded(now: ContinuousClock.Instant = .now) {
        lastSuccess.withLock { $0 = now }
    }
}
