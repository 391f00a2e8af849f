import ConcordSessionsTesting
import NIOCore
import NIOPosix
import Testing

@testable import ConcordProxy

/// The proxy's sockets, client side and backend side, get `TCP_NODELAY` (small responses go at once) and not
/// `SO_DEBUG`: asked for at the socket level, "TCP_NODELAY" is SO_DEBUG, which only root may set — a proxy run by
/// any other user reset every connection, while these tests, run as root, passed. Read off this process's sockets.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ConnectionSocketOptionsTests {
    @Test func httpModeClientAndBackendSocketsHaveNoDelayAndNotDebug() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                try await Self.withClient(port: port, sending: "GET / HTTP/1.1\r\nHost: t\r\n\r\n") { clientPort in
                    try await Self.expectSocketsOK(localPort: port, peerPort: clientPort, "the accepted client connection")
                    try await Self.expectSocketsOK(peerPort: backends[0].port, "the pooled backend connection")
                }
            }
        }
    }

    @Test func tcpModeClientAndBackendSocketsHaveNoDelayAndNotDebug() async throws {
        try await ProxyHarness.withServers(["e"], start: { try await TestEchoBackend.start(name: $0) }) { backends in
            var configuration = ProxyConfiguration(backends: [try HostPort(parsing: backends[0].address)], mode: .tcp, balance: .roundRobin)
            configuration.health = ProxyHarness.quietHealth
            try await ProxyHarness.withProxy(configuration) { _, port in
                try await Self.withClient(port: port, sending: "hello") { clientPort in
                    try await Self.expectSocketsOK(localPort: port, peerPort: clientPort, "the accepted client connection")
                    try await Self.expectSocketsOK(peerPort: backends[0].port, "the backend connection")
                }
            }
        }
    }

    /// A client connection held open for `body`, which gets its local port.
    static func withClient(port: Int, sending text: String, _ body: (Int) async throws -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        do {
            try await channel.writeAndFlush(ByteBuffer(string: text))
            try await body(try #require(channel.localAddress?.port))
            try await channel.close()
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Waits (bounded) for this process's socket(s) with these ports and checks their options.
    static func expectSocketsOK(localPort: Int? = nil, peerPort: Int, _ what: Comment) async throws {
        var sockets: [OpenTCPSockets.Socket] = []
        _ = await eventually(timeout: .seconds(5)) {
            sockets = OpenTCPSockets.matching(localPort: localPort, peerPort: peerPort)
            return !sockets.isEmpty
        }
        #expect(!sockets.isEmpty, "no socket found for \(what)")
        for socket in sockets {
            #expect(socket.noDelay && !socket.debug, "\(what): \(socket)")
        }
    }
}
