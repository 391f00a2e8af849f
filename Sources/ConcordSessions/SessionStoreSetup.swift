import Synchronization

/// The one-time setup of a store backend (open connections, create the schema), run on first use.
///
/// Operations that start together all await the same attempt. A failed attempt is forgotten, so the next
/// operation tries again: a store whose backend was down at start-up recovers by itself.
public final class SessionStoreSetup<Value: Sendable>: Sendable {
    private enum State {
        /// Nothing tried yet, or the last attempt failed.
        case idle
        /// Running or done: every caller awaits this task, which answers at once once it has finished.
        case started(Task<Value, any Error>)
        /// ``tearDown()`` ran; operations fail with `.unavailable`.
        case closed
    }

    private let state = Mutex(State.idle)
    private let setUp: @Sendable () async throws -> Value

    /// - Parameter setUp: the work to do once; throwing makes the next ``value()`` call try again.
    public init(_ setUp: @escaping @Sendable () async throws -> Value) {
        self.setUp = setUp
    }

    /// The result of the setup, running it first if no attempt has succeeded yet.
    public func value() async throws -> Value {
        let task: Task<Value, any Error> = try state.withLock { state in
            switch state {
            case .idle:
                let task = Task { try await setUp() }
                state = .started(task)
                return task
            case .started(let task):
                return task
            case .closed:
                throw SessionStoreError.unavailable("the session store was closed")
            }
        }
        do {
            return try await task.value
        } catch {
            // Forget the failed attempt (unless another caller already replaced it) so the next call retries.
            state.withLock { state in
                if case .started(let current) = state, current == task { state = .idle }
            }
            throw error
        }
    }

    /// Marks the setup closed and returns its value, if it succeeded, for the caller to release.
    public func tearDown() async -> Value? {
        let task: Task<Value, any Error>? = state.withLock { state in
            defer { state = .closed }
            if case .started(let task) = state { return task }
            return nil
        }
        return try? await task?.value
    }
}
