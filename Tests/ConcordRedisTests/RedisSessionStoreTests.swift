import ConcordRedis
import ConcordSessions
import MetricsTestKit
import Testing

@Suite(.timeLimit(.minutes(3))) struct RedisSessionStoreTests {
    static func withStore(
        configuring configure: (inout RedisSessionStoreConfiguration) -> Void = { _ in },
        _ body: (RedisSessionStore, RedisServerFixture) async throws -> Void
    ) async throws {
        try await RedisServerFixture.withServer { server in
            var configuration = try RedisSessionStoreConfiguration.testing(urls: [server.url])
            configure(&configuration)
            let store = try RedisSessionStore(configuration: configuration)
            defer { store.shutdown() }
            try await body(store, server)
        }
    }

    /// A store with test metrics on a fresh server, its scripts already loaded (a first `EVALSHA` answers
    /// `NOSCRIPT`, then `SCRIPT LOAD`), so every store call after it is one command per round trip; `body` gets the
    /// store and its command counter.
    static func withMeteredStore(_ body: (RedisSessionStore, TestCounter) async throws -> Void) async throws {
        try await RedisServerFixture.withServer { server in
            let metrics = TestMetrics()
            let store = try RedisSessionStore(configuration: try RedisSessionStoreConfiguration.testing(urls: [server.url]), metricsFactory: metrics)
            defer { store.shutdown() }
            _ = try await store.save(StoredSession(id: "warm", payload: [], userID: "w"), ttl: .seconds(60), expectedVersion: nil)
            _ = try await store.save(StoredSession(id: "warm", payload: [], userID: "w"), ttl: .seconds(60), expectedVersion: 1)
            _ = try await store.touch(id: "warm", ttl: .seconds(60))
            try await store.delete(id: "warm")
            try await body(store, try metrics.expectCounter("concord_redis_commands_total"))
        }
    }

    @Test func versionedSavesLoadsAndConflicts() async throws {
        try await Self.withStore { store, _ async throws in
            let session = StoredSession(id: "s1", payload: Array("hello".utf8), userID: "alice")
            #expect(try await store.save(session, ttl: .seconds(60), expectedVersion: 0) == 1)
            #expect(try await store.load(id: "s1") == StoredSession(id: "s1", payload: Array("hello".utf8), version: 1, userID: "alice"))
            #expect(try await store.version(id: "s1") == 1)
            #expect(try await store.save(session, ttl: .seconds(60), expectedVersion: 1) == 2)
            await #expect(throws: SessionStoreError.conflict(expected: 1, actual: 2)) {
                try await store.save(session, ttl: .seconds(60), expectedVersion: 1)
            }
            await #expect(throws: SessionStoreError.conflict(expected: 0, actual: 2)) {
                try await store.save(session, ttl: .seconds(60), expectedVersion: 0)
            }
            await #expect(throws: SessionStoreError.conflict(expected: 4, actual: nil)) {
                try await store.save(StoredSession(id: "absent", payload: []), ttl: .seconds(60), expectedVersion: 4)
            }
            #expect(try await store.save(session, ttl: .seconds(60), expectedVersion: nil) == 3)
            #expect(try await store.load(id: "missing") == nil)
            #expect(try await store.version(id: "missing") == nil)
        }
    }

    @Test func concurrentVersionedWritersExactlyOneWinsEachRound() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.save(StoredSession(id: "race", payload: [0]), ttl: .seconds(60), expectedVersion: 0)
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for writer in 0..<20 {
                    group.addTask {
                        do {
                            _ = try await store.save(
                                StoredSession(id: "race", payload: [UInt8(writer)]), ttl: .seconds(60), expectedVersion: 1)
                            return true
                        } catch let error as SessionStoreError where error.isConflict {
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(wins == 1)
            #expect(try await store.version(id: "race") == 2)
        }
    }

    @Test func expiryTouchAndDelete() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.save(StoredSession(id: "short", payload: [1]), ttl: .milliseconds(200), expectedVersion: nil)
            _ = try await store.save(StoredSession(id: "kept", payload: [2]), ttl: .seconds(5), expectedVersion: nil)
            #expect(try await store.touch(id: "kept", ttl: .seconds(600)))
            #expect(try await !store.touch(id: "missing", ttl: .seconds(60)))
            let ttl = try #require(try await store.client.send(.pttl("concord:session:{kept}")).int)
            #expect(ttl > 500_000)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await store.load(id: "short") == nil)
            #expect(try await !store.touch(id: "short", ttl: .seconds(60)))
            #expect(try await store.load(id: "kept")?.version == 1)
            try await store.delete(id: "kept")
            try await store.delete(id: "kept")
            #expect(try await store.load(id: "kept") == nil)
        }
    }

    @Test func userIndexFollowsSavesDeletesAndExpiry() async throws {
        try await Self.withStore { store, _ in
            for id in ["a1", "a2", "a3"] {
                _ = try await store.save(StoredSession(id: id, payload: [], userID: "ann"), ttl: .seconds(60), expectedVersion: nil)
            }
            _ = try await store.save(StoredSession(id: "b1", payload: [], userID: "bob"), ttl: .seconds(60), expectedVersion: nil)
            _ = try await store.save(StoredSession(id: "gone", payload: [], userID: "ann"), ttl: .milliseconds(100), expectedVersion: nil)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await store.sessionIDs(forUser: "ann") == ["a1", "a2", "a3"])
            // a3 changes hands: it leaves ann's index.
            _ = try await store.save(StoredSession(id: "a3", payload: [], userID: "bob"), ttl: .seconds(60), expectedVersion: nil)
            #expect(try await store.sessionIDs(forUser: "ann") == ["a1", "a2"])
            // A versioned save (the replace script) that changes the user moves the session between indexes too;
            // one that keeps the user keeps it.
            #expect(try await store.save(StoredSession(id: "a1", payload: [1], userID: "ann"), ttl: .seconds(60), expectedVersion: 1) == 2)
            #expect(try await store.sessionIDs(forUser: "ann") == ["a1", "a2"])
            #expect(try await store.save(StoredSession(id: "a2", payload: [2], userID: "cyd"), ttl: .seconds(60), expectedVersion: 1) == 2)
            #expect(try await store.sessionIDs(forUser: "ann") == ["a1"])
            #expect(try await store.sessionIDs(forUser: "cyd") == ["a2"])
            #expect(try await store.save(StoredSession(id: "a2", payload: [3], userID: "ann"), ttl: .seconds(60), expectedVersion: 2) == 3)
            #expect(try await store.sessionIDs(forUser: "cyd") == [])
            #expect(try await store.load(id: "a2") == StoredSession(id: "a2", payload: [3], version: 3, userID: "ann"))
            // Logging out (no user) at a known version leaves the index as well.
            #expect(try await store.save(StoredSession(id: "a1", payload: []), ttl: .seconds(60), expectedVersion: 2) == 3)
            #expect(try await store.sessionIDs(forUser: "ann") == ["a2"])
            #expect(try await store.load(id: "a1") == StoredSession(id: "a1", payload: [], version: 3, userID: nil))
            _ = try await store.save(StoredSession(id: "a1", payload: [], userID: "ann"), ttl: .seconds(60), expectedVersion: 3)
            #expect(try await store.sessionIDs(forUser: "ann") == ["a1", "a2"])
            try await store.delete(id: "a2")
            #expect(try await store.sessionIDs(forUser: "ann") == ["a1"])
            #expect(try await store.deleteAll(forUser: "bob") == 2)
            #expect(try await store.load(id: "b1") == nil)
            #expect(try await store.sessionIDs(forUser: "bob") == [])
            #expect(try await store.load(id: "a1") != nil)
        }
    }

    @Test func aLoggedInSaveIsOneCommandOnOneServer() async throws {
        try await Self.withMeteredStore { store, commands in
            let before = commands.totalValue
            #expect(try await store.save(StoredSession(id: "s1", payload: [1], userID: "ann"), ttl: .seconds(60), expectedVersion: 0) == 1)
            #expect(try await store.save(StoredSession(id: "s1", payload: [2], userID: "ann"), ttl: .seconds(60), expectedVersion: 1) == 2)
            #expect(try await store.save(StoredSession(id: "s2", payload: [3], userID: "ann"), ttl: .seconds(600), expectedVersion: nil) == 1)
            #expect(commands.totalValue - before == 3, "commands for three logged-in saves: \(commands.totalValue - before)")
            #expect(try await store.sessionIDs(forUser: "ann") == ["s1", "s2"])
            // The index lives at least as long as its longest session.
            let ttl = try await store.client.send(RedisCommand("PTTL", ["concord:user:{ann}"])).int ?? -2
            #expect(ttl > 590_000, "index TTL \(ttl) ms")
            // A save that loses a conflict adds nothing to the index.
            await #expect(throws: SessionStoreError.self) {
                try await store.save(StoredSession(id: "s3", payload: [], userID: "bob"), ttl: .seconds(60), expectedVersion: 5)
            }
            await #expect(throws: SessionStoreError.self) {
                try await store.save(StoredSession(id: "s1", payload: [], userID: "bob"), ttl: .seconds(60), expectedVersion: 1)
            }
            #expect(try await store.client.send(RedisCommand("EXISTS", ["concord:user:{bob}"])).int == 0)
        }
    }

    /// On one server a logged-in touch and delete also update the user's index in their script: one command each
    /// (two before: the script, then the index update).
    @Test func aLoggedInTouchAndDeleteAreOneCommandOnOneServer() async throws {
        try await Self.withMeteredStore { store, commands in
            _ = try await store.save(StoredSession(id: "s1", payload: [1], userID: "ann"), ttl: .seconds(60), expectedVersion: nil)
            _ = try await store.save(StoredSession(id: "s2", payload: [2], userID: "ann"), ttl: .seconds(60), expectedVersion: nil)

            var before = commands.totalValue
            #expect(try await store.touch(id: "s1", ttl: .seconds(900)) == true)
            #expect(commands.totalValue - before == 1, "commands for a logged-in touch: \(commands.totalValue - before)")
            let ttl = try await store.client.send(RedisCommand("PTTL", ["concord:user:{ann}"])).int ?? -2
            #expect(ttl > 890_000, "the index lives as long as the touched session: \(ttl) ms")

            before = commands.totalValue
            try await store.delete(id: "s1")
            #expect(commands.totalValue - before == 1, "commands for a logged-in delete: \(commands.totalValue - before)")
            #expect(try await store.client.send(RedisCommand("SMEMBERS", ["concord:user:{ann}"])).elements?.compactMap(\.string) == ["s2"])
            #expect(try await store.sessionIDs(forUser: "ann") == ["s2"])
            #expect(try await store.touch(id: "s1", ttl: .seconds(60)) == false)
        }
    }

    /// An index entry left behind (a session re-saved for another user while the index update after it failed) is
    /// not listed for the old user, and is removed from that user's index.
    @Test func aUsersListingSkipsSessionsOwnedBySomeoneElse() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.save(StoredSession(id: "mine", payload: [], userID: "ann"), ttl: .seconds(60), expectedVersion: nil)
            _ = try await store.save(StoredSession(id: "theirs", payload: [], userID: "annabel"), ttl: .seconds(60), expectedVersion: nil)
            _ = try await store.save(StoredSession(id: "anon", payload: []), ttl: .seconds(60), expectedVersion: nil)
            _ = try await store.client.send(RedisCommand("SADD", ["concord:user:{ann}", "theirs", "anon"]))
            #expect(try await store.sessionIDs(forUser: "ann") == ["mine"])
            #expect(try await store.client.send(RedisCommand("SCARD", ["concord:user:{ann}"])).int == 1)
            #expect(try await store.sessionIDs(forUser: "annabel") == ["theirs"])
            #expect(try await store.deleteAll(forUser: "ann") == 1)
            #expect(try await store.load(id: "theirs") != nil)
        }
    }

    @Test func oversizedAndCorruptRecordsAreTypedErrors() async throws {
        try await Self.withStore(configuring: { $0.maximumPayloadSize = 1000 }) { store, server in
            await #expect(throws: SessionStoreError.tooLarge(size: 1001, limit: 1000)) {
                try await store.save(StoredSession(id: "big", payload: Array(repeating: 7, count: 1001)), ttl: .seconds(5), expectedVersion: nil)
            }
            _ = try await store.client.send(.set("concord:session:{bad}", "not a record"))
            await #expect(throws: SessionStoreError.self) { try await store.load(id: "bad") }
            do {
                _ = try await store.load(id: "bad")
            } catch let error as SessionStoreError {
                #expect(error.isCorrupt)
            }
            do {
                _ = try await store.save(StoredSession(id: "bad", payload: []), ttl: .seconds(5), expectedVersion: 3)
                Issue.record("a versioned save over a corrupt record succeeded")
            } catch let error as SessionStoreError {
                #expect(error.isCorrupt)
            }
            _ = try await store.client.send(.sadd("concord:session:{set}", ["x"]))
            do {
                _ = try await store.save(StoredSession(id: "set", payload: []), ttl: .seconds(5), expectedVersion: nil)
                Issue.record("saved over a set")
            } catch let error as SessionStoreError {
                #expect(error.isCorrupt)
            }
            do {
                _ = try await store.save(StoredSession(id: "set", payload: []), ttl: .seconds(5), expectedVersion: 1)
                Issue.record("a versioned save over a set succeeded")
            } catch let error as SessionStoreError {
                #expect(error.isCorrupt)
            }
        }
    }

    /// Redis stops mid-test: every request fails quickly with `.unavailable`; when Redis is back the store works again.
    @Test func survivesARedisRestart() async throws {
        try await Self.withStore(configuring: {
            $0.client.maximumReconnectBackoff = .milliseconds(200)
            // Long timeouts, so a request that waited for one instead of failing fast would take 30 s.
            $0.client.connectTimeout = .seconds(30)
            $0.client.commandTimeout = .seconds(30)
        }) { store, server in
            _ = try await store.save(StoredSession(id: "before", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            await server.stop(removeDirectory: false)
            for attempt in 0..<10 {
                let start = ContinuousClock.now
                do {
                    _ = try await attempt.isMultiple(of: 2)
                        ? store.load(id: "before")?.version
                        : store.save(StoredSession(id: "during", payload: [2]), ttl: .seconds(60), expectedVersion: nil)
                    Issue.record("request \(attempt) succeeded while Redis was down")
                } catch let error as SessionStoreError {
                    // Refused or backing off: nothing was sent, and the error says so.
                    #expect(error.isUnavailableAndNotApplied, "\(error)")
                }
                // Refused connections fail at once: far below the 30 s timeouts even on a loaded machine.
                #expect(ContinuousClock.now - start < .seconds(10))
            }
            try await server.restart()
            var recovered = false
            for _ in 0..<50 where !recovered {
                if (try? await store.save(StoredSession(id: "after", payload: [3]), ttl: .seconds(60), expectedVersion: 0)) == 1 {
                    recovered = true
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(recovered)
            #expect(try await store.load(id: "after")?.payload == [3])
        }
    }

    /// Behind a `ReadRetryingSessionStore`, a save while Redis is down (refused: the save never left the app) waits
    /// for Redis and then succeeds; a save that Redis received and never answered (its server killed while the
    /// clients are paused) fails at once: it may have been applied, so it is not sent again.
    @Test func aSaveWaitsOutAnOutageOnlyWhenItWasNeverSent() async throws {
        try await Self.withStore(configuring: {
            $0.client.maximumReconnectBackoff = .milliseconds(200)
            $0.client.commandTimeout = .seconds(30)
        }) { store, server in
            let retrying = ReadRetryingSessionStore(backing: store, budget: .seconds(60), interval: .milliseconds(20))
            _ = try await retrying.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: nil)

            await server.stop(removeDirectory: false)
            // Until the pool has seen its connections close: a command written on one just before that may have
            // reached Redis as far as the client can tell, and is rightly not retried.
            var refusedInARow = 0
            for _ in 0..<500 where refusedInARow < 3 {
                do {
                    _ = try await store.version(id: "s")
                } catch let error as SessionStoreError {
                    refusedInARow = error.isUnavailableAndNotApplied ? refusedInARow + 1 : 0
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            try #require(refusedInARow == 3, "the store did not see Redis go")
            let during = Task { try await retrying.save(StoredSession(id: "t", payload: [2]), ttl: .seconds(60), expectedVersion: nil) }
            try await Task.sleep(for: .milliseconds(500))
            try await server.restart()
            #expect(try await during.value == 1)
            #expect(try await retrying.load(id: "t")?.payload == [2])
            #expect(retrying.statistics.retriedWrites == 1 && retrying.statistics.recoveredWrites == 1, "\(retrying.statistics)")

            // Sent, then the server dies before answering.
            let admin = try RedisClient(configuration: .testing(urls: [server.url]))
            defer { admin.shutdown() }
            _ = try await admin.send(RedisCommand("CLIENT", ["PAUSE", "20000", "WRITE"]))
            let started = ContinuousClock.now
            let paused = Task { try await retrying.save(StoredSession(id: "u", payload: [3]), ttl: .seconds(60), expectedVersion: nil) }
            // Until Redis holds the save (a paused write counts as a blocked client): a fixed 300-ms pause was not
            // always enough on a loaded machine, and a save not yet sent is rightly retried.
            var held = false
            for _ in 0..<500 where !held {
                held = try await admin.send(RedisCommand("INFO", ["clients"])).string?.contains("blocked_clients:1") == true
                if !held { try await Task.sleep(for: .milliseconds(20)) }
            }
            try #require(held, "the save never reached Redis")
            await server.stop(removeDirectory: false)
            await #expect { _ = try await paused.value } throws: {
                guard let error = $0 as? SessionStoreError else { return false }
                return error.isUnavailable && !error.isUnavailableAndNotApplied
            }
            // Far below the 60-s budget a retried save would have waited (Redis stays down).
            #expect(ContinuousClock.now - started < .seconds(30))
            #expect(retrying.statistics.retriedWrites == 1, "\(retrying.statistics)")
        }
    }
}
