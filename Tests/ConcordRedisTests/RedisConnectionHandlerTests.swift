import NIOCore
import NIOEmbedded
import Testing

@testable import ConcordRedis

@Suite(.timeLimit(.minutes(3))) struct RedisConnectionHandlerTests {
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            RedisConnectionHandler(commandTimeout: .seconds(1), decoder: RESPDecoderConfiguration(maximumBufferSize: 1024)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    @Test func pipelinesCommandsAndMatchesRepliesInOrder() throws {
        let channel = try makeChannel()
        let first = channel.eventLoop.makePromise(of: RESPValue.self)
        let second = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(RedisRequest(command: .get("a"), promise: first))
        try channel.writeOutbound(RedisRequest(command: .del("b"), promise: second))
        channel.embeddedEventLoop.run()  // the handler flushes once per tick
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        if let more = try channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(more) }
        #expect(String(buffer: written) == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nDEL\r\n$1\r\nb\r\n")

        try channel.writeInbound(ByteBuffer(string: "$1\r\nx\r\n:1"))
        #expect(try first.futureResult.wait() == .bulkString(ByteBuffer(string: "x")))
        try channel.writeInbound(ByteBuffer(string: "\r\n"))
        #expect(try second.futureResult.wait() == .integer(1))
        _ = try channel.finish()
    }

    @Test func garbageFromTheServerFailsPendingCommandsAndCloses() throws {
        let channel = try makeChannel()
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(RedisRequest(command: .ping(), promise: promise))
        _ = try? channel.writeInbound(ByteBuffer(string: "?garbage\r\n"))
        #expect(throws: RedisClientError.self) { try promise.futureResult.wait() }
        #expect(!channel.isActive)
    }

    @Test func aLateReplyTimesOutEveryPendingCommandAndCloses() throws {
        let channel = try makeChannel()
        let first = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(RedisRequest(command: .ping(), promise: first))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
        let second = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(RedisRequest(command: .ping(), promise: second))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(300))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))  // the first is now 1.1 s old
        #expect(throws: RedisClientError.self) { try first.futureResult.wait() }
        do {
            _ = try second.futureResult.wait()
            Issue.record("the second command succeeded")
        } catch let error as RedisClientError {
            #expect(error.isTimeout)
        }
        #expect(!channel.isActive)
    }

    @Test func closingFailsPendingCommands() throws {
        let channel = try makeChannel()
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(RedisRequest(command: .ping(), promise: promise))
        try channel.close().wait()
        #expect(throws: RedisClientError.connectionClosed) { try promise.futureResult.wait() }
    }
}
