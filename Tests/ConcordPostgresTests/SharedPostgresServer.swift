import ConcordPostgres
import Testing

/// One real PostgreSQL server for a whole suite: started before its first test, stopped and deleted after its
/// last (also when tests fail). Tests reach it through ``current`` and isolate themselves by table name.
struct SharedPostgresServer: SuiteTrait, TestScoping {
    @TaskLocal static var current: LocalPostgresServer?

    var isRecursive: Bool { false }

    func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        try await LocalPostgresServer.withServer { server in
            try await Self.$current.withValue(server) { try await function() }
        }
    }

    /// The suite's server; a test outside a `.sharedPostgresServer` suite fails here.
    static func server() throws -> LocalPostgresServer {
        try #require(current, "the suite needs the .sharedPostgresServer trait")
    }
}

extension Trait where Self == SharedPostgresServer {
    /// Runs the suite against one real PostgreSQL server (see ``SharedPostgresServer``).
    static var sharedPostgresServer: Self { Self() }
}

/// Runs `body` with a store on `configuration` whose ``PostgresSessionStore/run()`` (the connection pool) runs
/// alongside, and stops it afterwards.
func withPostgresStore<T: Sendable>(
    _ configuration: PostgresSessionStoreConfiguration,
    clock: any Clock<Duration> = ContinuousClock(),
    _ body: (PostgresSessionStore) async throws -> T
) async throws -> T {
    let store = PostgresSessionStore(configuration: configuration, clock: clock)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await store.run() }
        defer { group.cancelAll() }
        return try await body(store)
    }
}
