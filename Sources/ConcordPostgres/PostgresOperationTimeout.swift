/// Runs `operation`, cancelling it and throwing ``PostgresOperationTimeout`` if it takes longer than `timeout`.
/// Cancelling also withdraws a request still waiting for a pooled connection, so nothing piles up in an outage.
func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw PostgresOperationTimeout(timeout: timeout)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A store operation did not finish within ``PostgresSessionStoreConfiguration/operationTimeout``.
struct PostgresOperationTimeout: Error, CustomStringConvertible {
    var timeout: Duration
    var description: String { "no answer from PostgreSQL within \(timeout)" }
}
