import ConcordSessions
import Logging
import PostgresNIO
import Testing

@testable import ConcordPostgres

/// The store-failure behaviour: while PostgreSQL is down, operations fail fast with `.unavailable` (no hang);
/// when it is back they succeed again by themselves, and nothing saved before the outage is lost.
@Suite("PostgresSessionStore outage", .timeLimit(.minutes(3)))
struct PostgresOutageTests {
    @Test func failsFastWhileTheServerIsDownAndRecoversWhenItReturns() async throws {
        try await LocalPostgresServer.withServer { server in
            var configuration = server.storeConfiguration(tableName: "outage")
            // Short enough to show failing fast, long enough that a loaded 2-core CI machine is not an outage.
            configuration.operationTimeout = .seconds(5)
            configuration.connectTimeout = .seconds(5)
            try await withPostgresStore(configuration) { store in
                #expect(try await store.save(StoredSession(id: "s", payload: [1, 2, 3]), ttl: .seconds(600), expectedVersion: 0) == 1)

                try await server.stop()
                var errors: [String] = []
                for attempt in 0..<3 {
                    let started = ContinuousClock.now
                    let error = await #expect(throws: SessionStoreError.self, "attempt \(attempt)") {
                        _ = try await store.load(id: "s")
                    }
                    #expect(error?.isUnavailable == true, "\(String(describing: error))")
                    #expect(ContinuousClock.now - started < .seconds(15), "bounded by the operation timeout")
                    // Once a connect has failed, one request after another is refused at once while the store's
                    // own probe waits for a connection (each waited the whole timeout before 2026-12-03).
                    if attempt > 0 {
                        #expect(ContinuousClock.now - started < .seconds(1), "attempt \(attempt) took \(ContinuousClock.now - started)")
                        #expect("\(String(describing: error))".contains("the store keeps trying in the background"))
                    }
                    errors.append(String(describing: error))
                }
                // A wait for a connection that timed out names why there was none (it said "no answer within 5 s").
                #expect(errors.contains { $0.contains("the last attempt failed") && $0.contains("Connection refused") }, "\(errors)")
                // Concurrent requests during the outage are all refused at once (each waited the whole operation
                // timeout before 2026-12-03; then one of them waited while the others were refused).
                let fast = await withTaskGroup(of: Bool.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            let started = ContinuousClock.now
                            do {
                                _ = try await store.load(id: "s")
                                return false
                            } catch {
                                return ContinuousClock.now - started < .seconds(1) && "\(error)".contains("the store keeps trying in the background")
                            }
                        }
                    }
                    var fast = 0
                    for await wasFast in group where wasFast { fast += 1 }
                    return fast
                }
                #expect(fast >= 7, "\(fast) of 8 concurrent loads failed at once")
                let saveError = await #expect(throws: SessionStoreError.self) {
                    _ = try await store.save(StoredSession(id: "s", payload: [9]), ttl: .seconds(600), expectedVersion: 1)
                }
                // No connection could be had: the save never reached PostgreSQL, and its error says so.
                #expect(saveError?.isUnavailableAndNotApplied == true, "\(String(describing: saveError))")

                try await server.startAgain()
                var recovered: StoredSession?
                let deadline = ContinuousClock.now + .seconds(20)
                while recovered == nil, ContinuousClock.now < deadline {
                    do {
                        recovered = try await store.load(id: "s")
                    } catch let error as SessionStoreError where error.isUnavailable {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(recovered?.payload == [1, 2, 3], "the session saved before the outage is still there")
                // The probe saw the server take its own connection and swapped in a fresh pool (the old one's wait
                // between reconnects grows to 60 s in a long outage).
                #expect(store.poolReplacements >= 1)
                var version: UInt64?
                while version == nil, ContinuousClock.now < deadline {
                    do {
                        version = try await store.save(StoredSession(id: "s", payload: [4]), ttl: .seconds(600), expectedVersion: 1)
                    } catch let error as SessionStoreError where error.isUnavailable {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(version == 2, "versioned saves work again after the outage")
            }
        }
    }

    /// A save that reached PostgreSQL and then timed out (another transaction holds its row) may still be applied
    /// when that transaction ends: its error must not say it was not.
    @Test func aStatementThatReachedTheServerIsNotReportedAsNotApplied() async throws {
        try await LocalPostgresServer.withServer { server in
            var configuration = server.storeConfiguration(tableName: "locked")
            // The table and its row first, with the default timeout: on a loaded machine a fresh server's first
            // statements (the schema) can take more than the 2 s the locked save below gets.
            let first = try await withPostgresStore(configuration) { setup in
                try await setup.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(600), expectedVersion: nil)
            }
            #expect(first == 1)
            configuration.operationTimeout = .seconds(2)
            try await withPostgresStore(configuration) { store in
                let logger = Logger(label: "test")
                let holder = try await PostgresConnection.connect(
                    configuration: .init(host: "127.0.0.1", port: server.port, username: "postgres", password: nil, database: "postgres", tls: .disable),
                    id: 2, logger: logger)
                do {
                    try await holder.query("BEGIN", logger: logger)
                    try await holder.query("SELECT id FROM locked WHERE id = 's' FOR UPDATE", logger: logger)
                    let error = await #expect(throws: SessionStoreError.self) {
                        _ = try await store.save(StoredSession(id: "s", payload: [2]), ttl: .seconds(600), expectedVersion: 1)
                    }
                    #expect(error?.isUnavailable == true && error?.isUnavailableAndNotApplied == false, "\(String(describing: error))")
                    try await holder.query("ROLLBACK", logger: logger)
                    try await holder.close()
                } catch {
                    try? await holder.close()
                    throw error
                }
            }
        }
    }
}
