import Synchronization

/// Runs `operation`, throwing ``PostgresOperationTimeout`` once `timeout` has passed, and cancelling it then.
/// Cancelling also withdraws a request still waiting for a pooled connection, so nothing piles up in an outage.
///
/// The caller's answer is bounded by `timeout` even when the operation does not react to cancellation at once:
/// the operation runs in a task of its own and is not awaited past the deadline (a task group would wait for it —
/// in one test run a query on a stopped server ignored its cancellation for a minute and the store hung with it).
/// If the caller itself is cancelled, the operation is cancelled too.
func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = TimeoutOutcome<T>()
    let work = Task {
        do {
            outcome.finish(with: .success(try await operation()))
        } catch {
            outcome.finish(with: .failure(error))
        }
    }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        if outcome.finish(with: .failure(PostgresOperationTimeout(timeout: timeout))) { work.cancel() }
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        try await outcome.value()
    } onCancel: {
        work.cancel()
    }
}

/// The first of "the operation finished" and "the deadline passed", handed to the one waiting caller.
private final class TimeoutOutcome<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
        case delivered
    }

    private let state = Mutex(State.pending)

    /// Records the outcome; `false` if one was recorded before.
    @discardableResult
    func finish(with result: Result<T, any Error>) -> Bool {
        let (recorded, continuation): (Bool, CheckedContinuation<T, any Error>?) = state.withLock { state in
            switch state {
            case .pending:
                state = .finished(result)
                return (true, nil)
            case .waiting(let continuation):
                state = .delivered
                return (true, continuation)
            case .finished, .delivered:
                return (false, nil)
            }
        }
        continuation?.resume(with: result)
        return recorded
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<T, any Error>? = state.withLock { state in
                if case .finished(let result) = state {
                    state = .delivered
                    return result
                }
                state = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// A store operation did not finish within ``PostgresSessionStoreConfiguration/operationTimeout``.
struct PostgresOperationTimeout: Error, CustomStringConvertible {
    var timeout: Duration
    /// The pool's last failed connection attempt since a statement last succeeded (``PostgresConnectFailureLog``).
    var lastConnectFailure: String?

    var description: String {
        guard let lastConnectFailure else { return "no answer from PostgreSQL within \(timeout)" }
        return "no connection to PostgreSQL within \(timeout); the last attempt failed: \(lastConnectFailure)"
    }
}
