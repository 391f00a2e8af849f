import Synchronization

/// Remembers whether a store's backend answered last time, so a store reports each change once (one log line
/// when it becomes unavailable, one when it is back) instead of once per failing request.
public final class SessionStoreReachability: Sendable {
    private let reachable = Atomic<Bool>(true)
    private let onChange: @Sendable (_ reachable: Bool, _ error: SessionStoreError?) -> Void

    /// - Parameter onChange: called on every flip: `(false, error)` when the backend stops answering,
    ///   `(true, nil)` when it answers again.
    public init(onChange: @escaping @Sendable (_ reachable: Bool, _ error: SessionStoreError?) -> Void) {
        self.onChange = onChange
    }

    /// Whether the last operation reached the backend.
    public var isReachable: Bool { reachable.load(ordering: .relaxed) }

    /// Records an operation that reached the backend.
    public func succeeded() {
        // Load first: the common case (still reachable) then writes nothing shared.
        guard !reachable.load(ordering: .relaxed), !reachable.exchange(true, ordering: .relaxed) else { return }
        onChange(true, nil)
    }

    /// Records an operation that could not reach the backend.
    public func failed(_ error: SessionStoreError) {
        guard reachable.load(ordering: .relaxed), reachable.exchange(false, ordering: .relaxed) else { return }
        onChange(false, error)
    }
}
