import NIOCore
import NIOPosix
import Testing

@testable import ConcordLab

@Suite struct LabHTTPConnectionTests {
    /// A keep-alive connection the server closed can be closed on the client's event loop between the user's
    /// "is it still open?" and the write: the request was never sent, so it failed before any response and may be
    /// resent (a browser does so for a reused connection) — not reported as a transport failure of the cluster.
    @Test func aRequestWrittenOnAConnectionThatJustClosedFailedBeforeAnyResponse() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let connection = try await LabHTTPConnection.connect(
            port: try #require(server.localAddress?.port), sourceAddress: nil, timeout: .seconds(5))
        await connection.close()
        do {
            _ = try await connection.send(method: .GET, path: "/", timeout: .seconds(5))
            Issue.record("a request on a closed connection was answered")
        } catch let error as LabError {
            #expect(error.isClosedBeforeResponse, "\(error)")
        }
    }
}
