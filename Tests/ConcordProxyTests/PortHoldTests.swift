#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Testing

/// The killed-backend tests rely on `stopHoldingPort()`: after it, the port refuses connections and no other
/// server — however it sets its socket options — can listen on it until the test lets go.
@Suite(.timeLimit(.minutes(3))) struct PortHoldTests {
    @Test func aStoppedBackendsHeldPortRefusesAndCannotBeTakenByAnotherServer() async throws {
        let backend = try await TestBackend.start(name: "held")
        let port = backend.port
        let hold = try await backend.stopHoldingPort()
        defer { hold.close() }

        // A server as other tests (and Hummingbird) start them: SO_REUSEADDR. It must not get the port.
        let intruder = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: port).get()
        let took = intruder != nil
        try? await intruder?.close()
        #expect(!took, "a SO_REUSEADDR server could listen on the held port \(port)")

        // Connecting is refused, not accepted.
        let connected = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(2))
            .connect(host: "127.0.0.1", port: port).get()
        let accepted = connected != nil
        try? await connected?.close()
        #expect(!accepted)

        // The backend itself can come back on its port while it is held (a test restarting a killed backend).
        let restarted = try await TestBackend.start(name: "held", port: port)
        #expect(restarted.port == port)
        await restarted.stop()
    }
}
