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
}
