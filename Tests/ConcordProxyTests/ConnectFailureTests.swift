import ConcordNetworking
import ConcordSessionsTesting
import NIOCore
import NIOPosix
import Testing

/// How a failed connect reads in the proxy's and the Redis client's log lines. NIO's own text for a refusal was
/// `Connection errors: SingleConnectionFailure(target: …, error: connection reset (error set): Connection refused
/// (errno: 111))` — a "reset" that was a refusal, in parentheses that read as unbalanced.
@Suite struct ConnectFailureTests {
    @Test func aRefusedConnectSaysRefused() async throws {
        let refusing = try LoopbackSocket.refusing()
        defer { refusing.close() }
        do {
            _ = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: refusing.port).get()
            Issue.record("a connect to a port that refuses succeeded")
        } catch {
            #expect(ConnectFailure.describe(error) == "connection refused (ECONNREFUSED)", "\(error)")
        }
    }

    @Test func aConnectTimeoutSaysHowLong() {
        #expect(ConnectFailure.describe(ChannelError.connectTimeout(.seconds(2))) == "timed out after 2 s")
        #expect(ConnectFailure.describe(ChannelError.connectTimeout(.milliseconds(250))) == "timed out after 250 ms")
    }
}
