import ConcordRedis
import ConcordSessions
import ConcordSessionsTesting
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// The client's and the store's swift-metrics counters move on real operations against a real `redis-server`
/// (or a loopback socket that refuses or never answers), and an outage is logged once, not once per request.
@Suite(.timeLimit(.minutes(3))) struct RedisMetricsTests {
    private func failures(_ metrics: TestMetrics, _ kind: String) throws -> Int64 {
        try metrics.expectCounter("concord_redis_command_failures_total", [("kind", kind)]).totalValue
    }

    @Test func clientCountsCommandsFailuresReconnectsAndOpenConnections() async throws {
        try await RedisServerFixture.withServer { server in
            let metrics = TestMetrics()
            var configuration = RedisClientConfiguration.testing(endpoints: [server.endpoint])
            configuration.maximumConnectionsPerNode = 2
            configuration.commandTimeout = .seconds(30)  // the BLPOP below must fail by the kill, not by a timeout
            let client = try RedisClient(configuration: configuration, metricsFactory: metrics)
            defer { client.shutdown() }
            let admin = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [server.endpoint]))
            defer { admin.shutdown() }
            let commands = try metrics.expectCounter("concord_redis_commands_total")
            let reconnects = try metrics.expectCounter("concord_redis_reconnects_total")

            for index in 0..<10 { _ = try await client.send(.set(RedisArgument("k\(index)"), "v")) }
            await #expect(throws: RedisClientError.self) { try await client.send(.sadd("k0", ["x"])) }  // WRONGTYPE
            // NOSCRIPT, SCRIPT LOAD, EVALSHA: still one command for the caller.
            #expect(try await client.run(RedisScript("return 7"), keys: ["k1"], arguments: []).int == 7)
            #expect(commands.totalValue == 12)
            // The pool (and its meter) exists from the first command on.
            let connections = try metrics.expectMeter("concord_redis_pool_connections", [("node", "\(server.endpoint)")])
            #expect(try failures(metrics, "server_error") == 1)
            #expect(try failures(metrics, "connection_closed") == 0)
            #expect(connections.lastValue == 2)
            #expect(reconnects.totalValue == 0)

            // Redis drops both connections: the meter falls to 0, and the next commands reconnect each slot.
            _ = try await admin.send(RedisCommand("CLIENT", ["KILL", "TYPE", "normal", "SKIPME", "yes"]))
            #expect(await eventually { connections.lastValue == 0 })
            for _ in 0..<2 { #expect(try await client.send(.ping()) == .simpleString("PONG")) }
            #expect(reconnects.totalValue == 2)
            #expect(connections.lastValue == 2)

            // A command pending when Redis closes its connection fails as connection_closed.
            let blocked = Task { () async -> RedisClientError? in
                do throws(RedisClientError) {
                    _ = try await client.send(RedisCommand("BLPOP", ["empty-list", "0"], keyIndex: 0))
                    return nil
                } catch {
                    return error
                }
            }
            let isBlocked = try await eventually {
                (try await admin.send(RedisCommand("INFO", ["clients"])).string ?? "").contains("blocked_clients:1")
            }
            try #require(isBlocked)
            _ = try await admin.send(RedisCommand("CLIENT", ["KILL", "TYPE", "normal", "SKIPME", "yes"]))
            #expect(await blocked.value == .connectionClosed)
            #expect(try failures(metrics, "connection_closed") == 1)
            #expect(commands.totalValue == 15)
        }
    }

    @Test func clientCountsTimeoutsRefusalsAndBackoff() async throws {
        // Listening but never answering: the PING times out, and its connection is closed (meter back to 0).
        let silent = try LoopbackSocket.silent()
        defer { silent.close() }
        let timeoutMetrics = TestMetrics()
        var quietConfiguration = RedisClientConfiguration(endpoints: [RedisEndpoint(host: "127.0.0.1", port: silent.port)])
        quietConfiguration.commandTimeout = .milliseconds(200)
        quietConfiguration.maximumConnectionsPerNode = 1
        let quiet = try RedisClient(configuration: quietConfiguration, metricsFactory: timeoutMetrics)
        defer { quiet.shutdown() }
        do {
            _ = try await quiet.send(.ping())
            Issue.record("a PING to a silent socket was answered")
        } catch {
            #expect(error.isTimeout, "\(error)")
        }
        #expect(try failures(timeoutMetrics, "timeout") == 1)
        let connections = try timeoutMetrics.expectMeter("concord_redis_pool_connections", [("node", "127.0.0.1:\(silent.port)")])
        #expect(connections.values.first == 1)
        #expect(await eventually { connections.lastValue == 0 })

        // Refused, then failing fast while backing off.
        let refusing = try LoopbackSocket.refusing()
        defer { refusing.close() }
        let refusalMetrics = TestMetrics()
        var refusedConfiguration = RedisClientConfiguration(endpoints: [RedisEndpoint(host: "127.0.0.1", port: refusing.port)])
        refusedConfiguration.maximumConnectionsPerNode = 1
        refusedConfiguration.reconnectBackoff = .seconds(120)
        refusedConfiguration.maximumReconnectBackoff = .seconds(120)
        let refused = try RedisClient(configuration: refusedConfiguration, metricsFactory: refusalMetrics)
        defer { refused.shutdown() }
        for _ in 0..<3 { await #expect(throws: RedisClientError.self) { try await refused.send(.ping()) } }
        #expect(try failures(refusalMetrics, "connection_failed") == 1)
        #expect(try failures(refusalMetrics, "backing_off") == 2)
        #expect(try refusalMetrics.expectCounter("concord_redis_commands_total").totalValue == 3)
        #expect(try refusalMetrics.expectCounter("concord_redis_reconnects_total").totalValue == 0)
    }

    /// The store counts loads, saves, conflicts and unavailable requests; a Redis outage logs one warning when it
    /// starts and one notice when Redis answers again, however many requests fail in between.
    @Test func storeCountsOperationsAndLogsAnOutageOnce() async throws {
        let metrics = TestMetrics()
        let logs = LogCapture()
        try await RedisServerFixture.withServer { server in
            var configuration = try RedisSessionStoreConfiguration.testing(urls: [server.url])
            configuration.client.maximumReconnectBackoff = .milliseconds(200)
            // Not a test of timeouts: a loaded 2-core CI machine once took over 2 s (the default) to answer the first
            // commands while every suite started its servers at once. Outage requests fail fast either way (refused).
            configuration.client.commandTimeout = .seconds(10)
            configuration.outageSummaryInterval = .seconds(600)  // no summary line in this test: one warning only
            configuration.outageRecoveryQuietPeriod = .zero
            let store = try RedisSessionStore(
                configuration: configuration, logger: Logger(label: "test") { _ in logs }, metricsFactory: metrics)
            defer { store.shutdown() }
            let loads = try metrics.expectCounter("concord_redis_session_loads_total")
            let saves = try metrics.expectCounter("concord_redis_session_saves_total")
            let conflicts = try metrics.expectCounter("concord_redis_session_conflicts_total")
            let unavailable = try metrics.expectCounter("concord_redis_session_unavailable_total")

            let session = StoredSession(id: "m1", payload: [1], userID: "ann")
            #expect(try await store.save(session, ttl: .seconds(60), expectedVersion: 0) == 1)
            await #expect(throws: SessionStoreError.conflict(expected: 0, actual: 1)) {
                try await store.save(session, ttl: .seconds(60), expectedVersion: 0)
            }
            #expect(try await store.load(id: "m1")?.version == 1)
            #expect(try await store.load(id: "absent") == nil)
            #expect((loads.totalValue, saves.totalValue, conflicts.totalValue, unavailable.totalValue) == (2, 2, 1, 0))
            // A near cache's check reads the version only: counted apart (it was counted nowhere before 2026-12-03).
            #expect(try await store.version(id: "m1") == 1)
            #expect(try metrics.expectCounter("concord_redis_session_version_reads_total").totalValue == 1 && loads.totalValue == 2)
            // A save is one script (on one server it updates the user index too), the conflict 1, each load 1, the
            // version read 1.
            #expect(try metrics.expectCounter("concord_redis_commands_total").totalValue == 5)

            await server.stop(removeDirectory: false)
            for attempt in 0..<10 {
                do {
                    _ = try await attempt.isMultiple(of: 2)
                        ? store.load(id: "m1")?.version
                        : store.save(session, ttl: .seconds(60), expectedVersion: nil)
                    Issue.record("request \(attempt) succeeded while Redis was down")
                } catch let error as SessionStoreError {
                    #expect(error.isUnavailable, "\(error)")
                }
            }
            #expect(unavailable.totalValue == 10)
            let connectionFailures = try ["connection_failed", "connection_closed", "backing_off", "timeout"]
                .map { try failures(metrics, $0) }.reduce(0, +)
            #expect(connectionFailures == 10)
            let outageLines = logs.lines.filter { $0.message.hasPrefix("redis session store") }
            #expect(outageLines.map(\.level) == [.warning], "\(outageLines)")
            #expect(outageLines.first?.message.contains("unreachable") == true)
            #expect(outageLines.first?.error?.contains("unavailable") == true)

            try await server.restart()
            var failedWhileRecovering = 0
            var recovered = false
            for _ in 0..<50 where !recovered {
                do {
                    _ = try await store.load(id: "m1")  // nil: the restarted Redis kept no data
                    recovered = true
                } catch {
                    failedWhileRecovering += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(recovered)
            let recoveryLines = logs.lines.filter { $0.message.hasPrefix("redis session store reachable again") }
            #expect(recoveryLines.map(\.level) == [.notice])
            #expect(recoveryLines.first?.message.contains("\(10 + failedWhileRecovering) store operations failed") == true)
            #expect(unavailable.totalValue == Int64(10 + failedWhileRecovering))
            #expect(try metrics.expectCounter("concord_redis_reconnects_total").totalValue >= 1)
            #expect(loads.totalValue == Int64(2 + 5 + failedWhileRecovering + 1))

            // Once recovered, successes skip the outage log; a second outage is reported again.
            await server.stop(removeDirectory: false)
            await #expect(throws: SessionStoreError.self) { _ = try await store.load(id: "m1") }
            let warnings = logs.lines.filter { $0.message.hasPrefix("redis session store unreachable") }
            #expect(warnings.count == 2, "\(warnings)")
        }
    }
}
