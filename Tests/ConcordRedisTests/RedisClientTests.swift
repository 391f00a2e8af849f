import ConcordRedis
import ConcordSessionsTesting
import NIOCore
import NIOPosix
import Testing

@Suite(.timeLimit(.minutes(3))) struct RedisClientTests {
    private func client(_ server: RedisServerFixture, _ configure: (inout RedisClientConfiguration) -> Void = { _ in }) throws
        -> RedisClient
    {
        var configuration = RedisClientConfiguration.testing(endpoints: [server.endpoint])
        configure(&configuration)
        return try RedisClient(configuration: configuration)
    }

    @Test func getSetWithExpiryAndConditions() async throws {
        try await RedisServerFixture.withServer { server in
            let client = try client(server)
            defer { client.shutdown() }
            #expect(try await client.send(.set("k", "v1", expiration: .seconds(100))) == .simpleString("OK"))
            #expect(try await client.send(.get("k")).string == "v1")
            #expect(try await client.send(.set("k", "v2", condition: .ifAbsent)) == .null)
            #expect(try await client.send(.set("k", "v3", expiration: .milliseconds(50_000), condition: .ifPresent)) == .simpleString("OK"))
            #expect(try await client.send(.get("k")).string == "v3")
            let pttl = try #require(try await client.send(.pttl("k")).int)
            #expect(pttl > 40_000 && pttl <= 50_000)
            #expect(try await client.send(.set("missing", "x", condition: .ifPresent)) == .null)
            #expect(try await client.send(.getex("k", expiration: .persist)).string == "v3")
            #expect(try await client.send(.pttl("k")).int == -1)
            #expect(try await client.send(.getex("k", expiration: .milliseconds(30_000))).string == "v3")
            #expect(try await client.send(.pexpire("k", milliseconds: 20_000)).int == 1)
            #expect(try await client.send(.del("k")).int == 1)
            #expect(try await client.send(.get("k")) == .null)
            #expect(try await client.send(.pexpire("k", milliseconds: 20_000)).int == 0)
        }
    }

    /// The client's socket has `TCP_NODELAY`, not `SO_DEBUG` (the same option number at the socket level, which
    /// only root may set: every connection of an app run by another user failed on it).
    @Test func connectionsHaveNoDelayAndNotDebug() async throws {
        try await RedisServerFixture.withServer { server in
            let client = try client(server)
            defer { client.shutdown() }
            #expect(try await client.send(.set("k", "v")) == .simpleString("OK"))
            let sockets = OpenTCPSockets.matching(peerPort: server.port)
            #expect(!sockets.isEmpty)
            for socket in sockets { #expect(socket.noDelay && !socket.debug, "\(socket)") }
        }
    }

    @Test func setsAndBinaryValues() async throws {
        try await RedisServerFixture.withServer { server in
            let client = try client(server)
            defer { client.shutdown() }
            #expect(try await client.send(.sadd("s", ["a", "b", "c"])).int == 3)
            #expect(try await client.send(.srem("s", ["b"])).int == 1)
            let members = try #require(try await client.send(.smembers("s")).elements).compactMap(\.string)
            #expect(Set(members) == ["a", "c"])
            let binary: [UInt8] = [0, 13, 10, 255, 36, 42]
            _ = try await client.send(.set("bin", RedisArgument(binary)))
            #expect(try await client.send(.get("bin")).bytes == binary)
            await #expect(throws: RedisClientError.self) { try await client.send(.sadd("bin", ["x"])) }
        }
    }

    @Test func manyConcurrentCommandsArePipelinedInOrder() async throws {
        try await RedisServerFixture.withServer { server in
            let client = try client(server) { $0.maximumConnectionsPerNode = 2 }
            defer { client.shutdown() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        _ = try await client.send(.set(RedisArgument("key\(index)"), RedisArgument("value\(index)")))
                        let value = try await client.send(.get(RedisArgument("key\(index)"))).string
                        #expect(value == "value\(index)")
                    }
                }
                try await group.waitForAll()
            }
            // At most the pool's 2 connections. Polled (bounded): a connection the fixture's readiness probe
            // closed can still be listed for a moment when the machine is busy.
            var listed = Int.max
            var clients = ""
            for _ in 0..<60 where listed > 2 {
                clients = try #require(try await client.send(RedisCommand("CLIENT", ["LIST"])).string)
                listed = clients.split(separator: "\n").count
                if listed > 2 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(listed <= 2, "\(clients)")
        }
    }

    @Test func authenticatesAndSelectsTheDatabase() async throws {
        try await RedisServerFixture.withServer(arguments: ["--requirepass", "s3cret"]) { server in
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(urls: ["redis://:s3cret@127.0.0.1:\(server.port)/3"]))
            defer { client.shutdown() }
            _ = try await client.send(.set("in3", "yes"))
            let other = try RedisClient(configuration: RedisClientConfiguration.testing(urls: ["redis://:s3cret@127.0.0.1:\(server.port)/0"]))
            defer { other.shutdown() }
            #expect(try await other.send(.get("in3")) == .null)
            #expect(try await client.send(.get("in3")).string == "yes")

            let wrong = try RedisClient(configuration: RedisClientConfiguration.testing(urls: ["redis://:nope@127.0.0.1:\(server.port)"]))
            defer { wrong.shutdown() }
            await #expect(throws: RedisClientError.self) { try await wrong.send(.ping()) }
        }
    }

    @Test func scriptsReloadAfterScriptFlush() async throws {
        try await RedisServerFixture.withServer { server in
            let client = try client(server)
            defer { client.shutdown() }
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try await client.run(script, keys: ["n"], arguments: ["2"]).int == 2)
            _ = try await client.send(RedisCommand("SCRIPT", ["FLUSH"]))
            #expect(try await client.run(script, keys: ["n"], arguments: ["3"]).int == 5)
        }
    }

    @Test func speaksRESP3() async throws {
        try await RedisServerFixture.withServer { server in
            let client = try client(server) { $0.protocolVersion = 3 }
            defer { client.shutdown() }
            _ = try await client.send(.sadd("s", ["a"]))
            #expect(try await client.send(.smembers("s")) == .set([.bulkString(ByteBuffer(string: "a"))]))
            #expect(try await client.send(.get("nothing")) == .null)
        }
    }

    @Test func commandTimeoutIsBoundedAndTheClientRecovers() async throws {
        try await RedisServerFixture.withServer { server in
            let admin = try client(server)
            defer { admin.shutdown() }
            let client = try client(server) {
                $0.commandTimeout = .milliseconds(200)
                $0.maximumConnectionsPerNode = 1
            }
            defer { client.shutdown() }
            // Connected before the pause (retried: on a loaded machine even a PING can miss 200 ms).
            var connected = false
            for _ in 0..<50 where !connected {
                connected = (try? await client.send(.ping())) == .simpleString("PONG")
            }
            try #require(connected)
            // 3 s: long enough that even a loaded machine sends the GET inside the pause.
            _ = try await admin.send(RedisCommand("CLIENT", ["PAUSE", "3000", "ALL"]))
            let start = ContinuousClock.now
            do {
                _ = try await client.send(.get("k"))
                Issue.record("expected a timeout")
            } catch let error as RedisClientError {
                #expect(error.isTimeout)
                #expect(!error.wasNotSent, "the GET was written: Redis may have run it")
            }
            // The timeout error (not a late reply after the pause) shows the 200 ms bound worked. The wall-clock
            // check only guards against a hang: a loaded CI machine can delay any task by a second or more.
            #expect(ContinuousClock.now - start < .seconds(10))
            // After the pause the same client answers again (a new connection replaces the timed-out one).
            var recovered = false
            for _ in 0..<100 where !recovered {
                recovered = (try? await client.send(.ping())) == .simpleString("PONG")
                if !recovered { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(recovered)
        }
    }

    /// A server that takes connections but answers nothing (paused here; stopped with SIGSTOP or hung alike): after
    /// a command went unanswered on a connection, its slot backs off as after a refused connect, so the next
    /// commands fail at once instead of each waiting the whole command timeout (every request of a walkthrough
    /// waited 2 s for its 503, 2026-12-04), and a reopen checks the server answers before a command is risked.
    @Test func aServerThatStopsAnsweringIsBackedOff() async throws {
        try await RedisServerFixture.withServer { server in
            let admin = try client(server)
            defer { admin.shutdown() }
            let client = try client(server) {
                $0.commandTimeout = .milliseconds(200)
                $0.maximumConnectionsPerNode = 2
                // Longer than the test: every command after each slot's first timeout must fail fast.
                $0.reconnectBackoff = .seconds(120)
                $0.maximumReconnectBackoff = .seconds(120)
            }
            defer { client.shutdown() }
            _ = try await admin.send(RedisCommand("CLIENT", ["PAUSE", "3000", "ALL"]))
            var timeouts = 0
            var backingOff = 0
            for _ in 0..<12 {
                do {
                    _ = try await client.send(.get("k"))
                    Issue.record("a GET answered during the pause")
                } catch let error as RedisClientError {
                    if error.isTimeout { timeouts += 1 } else if error.isBackingOff { backingOff += 1 }
                }
            }
            // One unanswered command per slot (2), then every command fails without being sent.
            #expect(timeouts <= 2 && backingOff >= 10, "\(timeouts) timeouts, \(backingOff) backing off")
            _ = try? await admin.send(RedisCommand("CLIENT", ["UNPAUSE"]))
        }
    }

    @Test func refusedConnectionsFailFastAndBackOff() async throws {
        // A bound socket that does not listen: connects are refused, and no other test can take the port meanwhile.
        let refusing = try LoopbackSocket.refusing()
        defer { refusing.close() }
        var configuration = try RedisClientConfiguration.testing(urls: ["redis://127.0.0.1:\(refusing.port)"])
        configuration.maximumConnectionsPerNode = 2
        // A backoff longer than the test, so every command after each slot's first refusal must fail fast.
        configuration.reconnectBackoff = .seconds(120)
        configuration.maximumReconnectBackoff = .seconds(120)
        let client = try RedisClient(configuration: configuration)
        defer { client.shutdown() }
        var refused = 0
        var backingOff = 0
        for _ in 0..<20 {
            do {
                _ = try await client.send(.ping())
                Issue.record("a PING to a refusing port succeeded")
            } catch {
                if error.isBackingOff { backingOff += 1 } else { refused += 1 }
                #expect(error.wasNotSent, "\(error)")
            }
        }
        // One connect per slot; the other 18 commands never touch the network.
        #expect(refused == 2)
        #expect(backingOff == 18)
    }
}

@Suite(.timeLimit(.minutes(3))) struct RedisConnectionClosedTests {
    /// A command sent on a connection that has already closed fails at once with a client error: it must not be
    /// dropped with its caller left waiting (no handler would ever see it, so no command timeout would fire).
    @Test func aCommandOnAClosedConnectionFailsInsteadOfHanging() async throws {
        try await RedisServerFixture.withServer { server in
            let connection = try await RedisConnection.connect(
                to: server.endpoint, configuration: RedisClientConfiguration.testing(endpoints: [server.endpoint]))
            #expect(try await connection.send(.ping()) == .simpleString("PONG"))
            connection.close()
            for _ in 0..<100 where connection.isActive { try await Task.sleep(for: .milliseconds(10)) }
            let start = ContinuousClock.now
            // Neither was written: the errors say so (a caller may send them again elsewhere).
            await #expect { _ = try await connection.send(.ping()) } throws: { ($0 as? RedisClientError)?.wasNotSent == true }
            await #expect { _ = try await connection.send([.ping(), .ping()]) } throws: {
                ($0 as? RedisClientError)?.wasNotSent == true
            }
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }
}

@Suite(.timeLimit(.minutes(3))) struct RedisNotRedisTests {
    /// A server that closes the connection on the first command without a reply (PostgreSQL given a Redis command,
    /// say) is named with a question, not a bare "connection closed" (2026-12-03).
    @Test func aServerThatClosesWithoutAReplyIsAskedAbout() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(CloseOnFirstRead()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        let endpoint = try RedisEndpoint(url: "redis://127.0.0.1:\(port)")
        let client = try RedisClient(configuration: .testing(endpoints: [endpoint]))
        await #expect { _ = try await client.send(.ping()) } throws: { error in
            "\(error)".contains("127.0.0.1:\(port) closed the connection without replying to the first command — does that port speak Redis (RESP)?")
        }
        client.shutdown()
        try await server.close()
    }

    private final class CloseOnFirstRead: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.close(promise: nil) }
    }
}

@Suite(.timeLimit(.minutes(3))) struct RedisConnectionBatchTests {
    /// Commands sent together stay together on the connection, whatever other callers send meanwhile: a batch that
    /// switches to database 1, writes and switches back must never let another caller's command run on database 1
    /// (the same guarantee `ASKING` + command needs in a cluster).
    @Test func aBatchIsNeverInterleavedWithOtherCallersCommands() async throws {
        try await RedisServerFixture.withServer { server in
            let configuration = RedisClientConfiguration.testing(endpoints: [server.endpoint])
            let connection = try await RedisConnection.connect(to: server.endpoint, configuration: configuration)
            defer { connection.close() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        for round in 0..<50 {
                            let replies = try await connection.send([
                                .select(database: 1), .set(RedisArgument("batch-\(task)-\(round)"), "1"), .select(database: 0),
                            ])
                            #expect(replies.allSatisfy { $0 == .simpleString("OK") })
                        }
                    }
                    group.addTask {
                        for round in 0..<50 { _ = try await connection.send(.set(RedisArgument("single-\(task)-\(round)"), "1")) }
                    }
                }
                try await group.waitForAll()
            }
            let database0 = try await connection.send(RedisCommand("KEYS", ["*"])).elements?.compactMap(\.string) ?? []
            #expect(database0.count == 400 && database0.allSatisfy { $0.hasPrefix("single-") })
            let database1 = try await connection.send([.select(database: 1), RedisCommand("KEYS", ["*"]), .select(database: 0)])
            let keys1 = database1[1].elements?.compactMap(\.string) ?? []
            #expect(keys1.count == 400 && keys1.allSatisfy { $0.hasPrefix("batch-") })
        }
    }
}
