import ConcordSessionsTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import ConcordProxy

/// Starting and stopping `ProxyServer`: a taken port is a clear `ProxyError`; `stop(drainTimeout:)` waits for
/// open client connections, then closes the ones left, so once it returns nothing is forwarded any more (an
/// embedding app's proxy must not keep relaying after its stop).
@Suite(.serialized, .timeLimit(.minutes(2))) struct ProxyServerLifecycleTests {
    @Test func aTakenPortIsAClearErrorForTheListenerAndTheAdminAPI() async throws {
        try await ProxyHarness.withBackends(["b0"]) { backends in
            // A listening socket without SO_REUSEPORT (a test backend has it, and a proxy with reusePort would
            // join that backend's port).
            let holder = try LoopbackSocket.silent()
            defer { holder.close() }
            let taken = HostPort(host: "127.0.0.1", port: holder.port)
            var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
            c.listen = taken
            await #expect(throws: ProxyError.cannotListen(on: taken, role: "client listener", error: IOError(errnoCode: EADDRINUSE, reason: "bind"))) {
                try await ProxyServer(configuration: c, logger: Logger(label: "proxy-test")).start()
            }
            #expect(ProxyError.cannotListen(on: taken, role: "admin API", error: IOError(errnoCode: EADDRINUSE, reason: "bind")).description
                    == "cannot listen on \(taken) (admin API): address already in use")
            c.listen = HostPort(host: "127.0.0.1", port: 0)
            c.admin = taken
            await #expect(throws: ProxyError.cannotListen(on: taken, role: "admin API", error: IOError(errnoCode: EADDRINUSE, reason: "bind"))) {
                try await ProxyServer(configuration: c, logger: Logger(label: "proxy-test")).start()
            }
        }
    }

    @Test func withReusePortANewProxyTakesOverThePortBeforeTheOldOneStops() async throws {
        try await ProxyHarness.withBackends(["b0"]) { backends in
            var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
            c.listen = HostPort(host: "127.0.0.1", port: 0)
            let old = try ProxyServer(configuration: c, logger: Logger(label: "proxy-test"))
            let port = try await old.start().listener.port!
            #expect(try await RawClient.get(port: port).status == 200)
            // A new proxy binds the same port while the old one runs (a binary upgrade), then the old one stops:
            // every request is answered, by one or the other.
            c.listen.port = port
            let new = try ProxyServer(configuration: c, logger: Logger(label: "proxy-test"))
            do {
                #expect(try await new.start().listener.port == port)
                await old.stop(drainTimeout: .seconds(1))
                for _ in 0..<20 { #expect(try await RawClient.get(port: port).status == 200) }
                #expect(backends[0].requests == 21)
            } catch {
                await old.stop(drainTimeout: .seconds(1))
                await new.stop(drainTimeout: .seconds(1))
                throw error
            }
            await new.stop(drainTimeout: .seconds(1))
        }
    }

    @Test func withoutReusePortOnEitherSideTheSecondBindIsRefused() async throws {
        try await ProxyHarness.withBackends(["b0"]) { backends in
            for (first, second) in [(false, true), (true, false)] {
                var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
                c.listen = HostPort(host: "127.0.0.1", port: 0)
                c.reusePort = first
                let running = try ProxyServer(configuration: c, logger: Logger(label: "proxy-test"))
                let port = try await running.start().listener.port!
                c.listen.port = port
                c.reusePort = second
                await #expect(throws: ProxyError.cannotListen(on: c.listen, role: "client listener", error: IOError(errnoCode: EADDRINUSE, reason: "bind"))) {
                    try await ProxyServer(configuration: c, logger: Logger(label: "proxy-test")).start()
                }
                #expect(try await RawClient.get(port: port).status == 200, "the first proxy serves on")
                await running.stop(drainTimeout: .seconds(1))
            }
        }
    }

    /// Runs `client` against a proxy that is stopped, with a 300-ms drain timeout, once the client has received
    /// `answer` (waited for up to 10 s, not a fixed time: a loaded machine may take long); returns what the client
    /// collected, how long it waited for the connection to end after the stop began, and the connections left open.
    func clientAcrossStop(_ configuration: ProxyConfiguration, answer: String,
                          _ client: @escaping @Sendable (Int, NIOLockedValueBox<ByteBuffer>) async throws -> RawClient.Response) async throws -> (RawClient.Response, Duration, Int) {
        try await ProxyHarness.withProxy(configuration) { server, port in
            let received = NIOLockedValueBox(ByteBuffer())
            async let response = client(port, received)
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            while !received.withLockedValue({ String(buffer: $0).contains(answer) }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.openClientConnections == 1, "the client's connection is open before stop")
            let start = ContinuousClock.now
            await server.stop(drainTimeout: .milliseconds(300))
            let left = server.openClientConnections
            let collected = try await response
            return (collected, ContinuousClock.now - start, left)
        }
    }

    @Test func anL4PairStillOpenAfterTheDrainTimeoutIsClosed() async throws {
        let backend = try await TestEchoBackend.start(name: "e0")
        do {
            var c = ProxyConfiguration(backends: [try HostPort(parsing: backend.address)], mode: .tcp, balance: .roundRobin)
            c.health = ProxyHarness.quietHealth
            // The client neither closes nor half-closes: only the proxy can end this pair before 20 s.
            let (response, elapsed, left) = try await clientAcrossStop(c, answer: "e0:hello") { port, received in
                try await RawClient.exchange(port: port, ["hello"], timeout: .seconds(20), collected: received)
            }
            #expect(response.text == "e0:hello", "the pair relayed before stop")
            #expect(left == 0, "no client connection is open once stop returned")
            #expect(elapsed < .seconds(10), "the pair ended after \(elapsed), not at stop")
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    @Test func anIdleKeepAliveClientIsClosedAfterTheDrainTimeout() async throws {
        try await ProxyHarness.withBackends(["b0"]) { backends in
            let c = try ProxyHarness.configuration(backends, balance: .roundRobin)
            // A keep-alive request: the proxy answers and keeps the connection (keepAliveTimeout is 60 s).
            let (response, elapsed, left) = try await clientAcrossStop(c, answer: "\r\n\r\nb0") { port, received in
                try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: test\r\n\r\n"], timeout: .seconds(20), collected: received)
            }
            #expect(response.text.hasPrefix("HTTP/1.1 200"), "answered before stop: \(response.text.prefix(40))")
            #expect(left == 0, "no client connection is open once stop returned")
            #expect(elapsed < .seconds(10), "the connection ended after \(elapsed), not at stop")
        }
    }

    /// A keep-alive client sends `requests` GETs, 1 s apart, through a proxy that begins to stop once the first
    /// is answered; returns what the client got and how long the stop took.
    private func keepAliveClientAcrossStop(requests: Int, drainTimeout: Duration, idleGrace: Duration) async throws
        -> (RawClient.Response, Duration)
    {
        try await ProxyHarness.withBackends(["b0"]) { backends in
            let c = try ProxyHarness.configuration(backends, balance: .roundRobin)
            return try await ProxyHarness.withProxy(c) { server, port in
                let received = NIOLockedValueBox(ByteBuffer())
                let request = "GET / HTTP/1.1\r\nHost: test\r\n\r\n"
                async let response = RawClient.exchange(
                    port: port, Array(repeating: request, count: requests), pause: .seconds(1), timeout: .seconds(30),
                    collected: received)
                let deadline = ContinuousClock.now.advanced(by: .seconds(10))
                while !received.withLockedValue({ String(buffer: $0).contains("\r\n\r\nb0") }) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                let start = ContinuousClock.now
                await server.stop(drainTimeout: drainTimeout, idleGrace: idleGrace)
                let elapsed = ContinuousClock.now - start
                return (try await response, elapsed)
            }
        }
    }

    /// While the proxy stops, a keep-alive client is told to go: the request it sends on its open connection is
    /// answered with `Connection: close` and the connection closes after it, so the stop ends then, not at the
    /// drain timeout (before: answered as keep-alive, and the connection held until the drain timeout cut it).
    @Test func aRequestOnAKeepAliveConnectionDuringStopIsAnsweredWithConnectionClose() async throws {
        // The second request leaves 1 s after the first: the stop begins in between.
        let (collected, elapsed) = try await keepAliveClientAcrossStop(requests: 2, drainTimeout: .seconds(20), idleGrace: .seconds(10))
        let answers = collected.text.components(separatedBy: "HTTP/1.1 200").count - 1
        #expect(answers == 2, "both requests answered: \(collected.text)")
        let second = collected.text.range(of: "HTTP/1.1 200", options: .backwards).map { String(collected.text[$0.lowerBound...]) } ?? ""
        #expect(second.lowercased().contains("connection: close"), "the answer during the stop: \(second)")
        #expect(collected.closedByPeer, "the proxy closed the connection after that answer")
        #expect(elapsed < .seconds(15), "the stop waited \(elapsed): the connection stayed open until the drain timeout")
    }

    @Test func anIdleKeepAliveClientIsClosedAfterTheIdleGrace() async throws {
        let (collected, elapsed) = try await keepAliveClientAcrossStop(requests: 1, drainTimeout: .seconds(20), idleGrace: .seconds(1))
        #expect(collected.closedByPeer)
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(15), "closed after \(elapsed), not after the 1-s grace")
    }
}
