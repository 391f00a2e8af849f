import ConcordRedis
import NIOCore
import NIOPosix
import Testing

@Suite(.timeLimit(.minutes(3))) struct EventLoopTaskExecutorTests {
    /// A task preferring the executor runs on its loop before and after every await, while real Redis commands
    /// go out on connections of that same loop.
    @Test func callersStayOnTheConnectionsEventLoop() async throws {
        try await RedisServerFixture.withServer { server in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [server.endpoint]), eventLoopGroup: group)
            let loop = group.next()
            let executor = EventLoopTaskExecutor(loop)
            let onLoop = try await withTaskExecutorPreference(executor) {
                var seen: [Bool] = [loop.inEventLoop]
                for i in 0..<20 {
                    _ = try await client.send(.set(RedisArgument("k\(i)"), RedisArgument("v\(i)")))
                    seen.append(loop.inEventLoop)
                    #expect(try await client.send(.get(RedisArgument("k\(i)"))).string == "v\(i)")
                    seen.append(loop.inEventLoop)
                }
                return seen
            }
            #expect(onLoop.count == 41 && onLoop.allSatisfy { $0 })
            // Without the preference the same calls resume off the loop.
            _ = try await client.send(.ping())
            #expect(!loop.inEventLoop)
            client.shutdown()
            try await group.shutdownGracefully()
        }
    }

    /// On a group of several loops, callers on one loop use connections of that loop (Redis sees disjoint sets of
    /// client ids per loop, at most the loop's share of the pool each), so no command crosses threads; a caller off
    /// the loops still gets a connection.
    @Test func callersOnSeveralLoopsUseTheirLoopsConnections() async throws {
        try await RedisServerFixture.withServer { server in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            var configuration = RedisClientConfiguration.testing(endpoints: [server.endpoint])
            configuration.maximumConnectionsPerNode = 4
            let client = try RedisClient(configuration: configuration, eventLoopGroup: group)
            let loops = Array(group.makeIterator())
            let seen = try await withThrowingTaskGroup(of: (Int, Set<Int64>).self) { tasks in
                for (index, loop) in loops.enumerated() {
                    for _ in 0..<3 {
                        tasks.addTask(executorPreference: EventLoopTaskExecutor(loop)) {
                            var ids: Set<Int64> = []
                            for _ in 0..<10 {
                                guard case .integer(let id) = try await client.send(RedisCommand("CLIENT", ["ID"])) else {
                                    throw RedisClientError.protocolViolation("CLIENT ID did not answer an integer")
                                }
                                ids.insert(id)
                            }
                            return (index, ids)
                        }
                    }
                }
                var seen: [Int: Set<Int64>] = [:]
                for try await (index, ids) in tasks { seen[index, default: []].formUnion(ids) }
                return seen
            }
            let first = seen[0] ?? [], second = seen[1] ?? []
            #expect(!first.isEmpty && !second.isEmpty)
            #expect(first.isDisjoint(with: second), "connections shared across loops: \(first) and \(second)")
            #expect(first.count <= 2 && second.count <= 2)
            #expect(try await client.send(.ping()).string == "PONG")
            client.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
