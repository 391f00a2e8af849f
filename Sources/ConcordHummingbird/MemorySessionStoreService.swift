import ConcordSessions
import ServiceLifecycle

/// Runs a ``MemorySessionStore``'s periodic sweep as a service-lifecycle `Service` (add it to the app's
/// services), stopping on graceful shutdown.
public struct MemorySessionStoreService<C: Clock>: Service where C.Duration == Duration {
    public let store: MemorySessionStore<C>

    public init(store: MemorySessionStore<C>) {
        self.store = store
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { [store] in
            try await store.run()
        }
    }
}
