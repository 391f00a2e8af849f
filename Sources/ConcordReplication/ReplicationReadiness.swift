import Synchronization

/// Whether a replicated store has finished its state transfer and can serve users; an app's `/ready` reports it
/// so the proxy sends the node no users before it holds their sessions.
public final class ReplicationReadiness: Sendable {
    private struct State {
        var isReady = false
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    public var isReady: Bool { state.withLock { $0.isReady } }

    /// Returns once the store is ready; throws `CancellationError` if the waiting task is cancelled first.
    public func waitUntilReady() async throws {
        let waiterID = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    if state.isReady { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[waiterID] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: waiterID) }?.resume(throwing: CancellationError())
        }
    }

    func markReady() {
        let waiters = state.withLock { state in
            state.isReady = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}
