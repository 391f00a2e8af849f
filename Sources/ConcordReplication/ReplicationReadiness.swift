import Synchronization

/// Whether a replicated store has finished its state transfer and can serve users; an app's `/ready` reports it
/// so the proxy sends the node no users before it holds their sessions.
public final class ReplicationReadiness: Sendable {
    private struct State {
        var isReady = false
        /// Why the store stopped before it became ready; later waiters get it at once.
        var failure: (any Error)?
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    public var isReady: Bool { state.withLock { $0.isReady } }

    /// Returns once the store is ready; throws `CancellationError` if the waiting task is cancelled first, and the
    /// store's error if it stopped (e.g. could not bind its port) before it became ready, so nobody waits forever.
    public func waitUntilReady() async throws {
        let waiterID = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    if state.isReady { return .success(()) }
                    if let failure = state.failure { return .failure(failure) }
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

    /// The store stopped: waiters of a store that never became ready get `error`.
    func markStopped(_ error: any Error) {
        let waiters = state.withLock { state in
            guard !state.isReady, state.failure == nil else { return [CheckedContinuation<Void, any Error>]() }
            state.failure = error
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: error) }
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
