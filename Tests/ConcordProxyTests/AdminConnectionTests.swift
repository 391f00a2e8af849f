import ConcordProxy
import Testing

/// The admin listener's connections: a malformed request gets 400 and the connection closes (it used to stay
/// open), and a body over 64 KiB gets 413 without being read into an error message (it used to be cut to 64 KiB,
/// parsed, and echoed back in the error).
@Suite struct AdminConnectionTests {
    @Test func aMalformedRequestIsAnswered400AndClosed() async throws {
        try await withAdmin { admin in
            let response = try await RawClient.exchange(port: admin, ["GARBAGE\r\n\r\n"], timeout: .seconds(3))
            #expect(response.status == 400 && response.closedByPeer, "\(response.text.prefix(200))")
        }
    }

    @Test func aBodyOverTheLimitIsAnswered413AndClosed() async throws {
        try await withAdmin { admin in
            let body = String(repeating: "x", count: 100_000)
            let response = try await RawClient.exchange(
                port: admin, ["POST /backends HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n", body], timeout: .seconds(3))
            #expect(response.status == 413 && response.closedByPeer, "\(response.text.prefix(200))")
            #expect(response.text.utf8.count < 1_000, "the body is not echoed")
        }
    }

    private func withAdmin(_ body: (Int) async throws -> Void) async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            var config = try ProxyHarness.configuration(backends)
            config.admin = HostPort(host: "127.0.0.1", port: 0)
            try await ProxyHarness.withProxy(config) { server, _ in
                try await body(try #require(server.addresses?.admin?.port))
            }
        }
    }
}
