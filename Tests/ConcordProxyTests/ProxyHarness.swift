import Foundation
import Logging
import NIOPosix
import Testing

@testable import ConcordProxy

/// Starts real backends and a proxy on loopback for one test and stops all of them afterwards, also on failure.
enum ProxyHarness {
    static func withBackends<T>(_ names: [String], _ body: ([TestBackend]) async throws -> T) async throws -> T {
        try await withServers(names, start: { try await TestBackend.start(name: $0) }, body)
    }

    /// Servers of any kind, one per name, stopped afterwards (also on failure).
    static func withServers<S: StoppableTestServer, T>(_ names: [String], start: (String) async throws -> S,
                                                       _ body: ([S]) async throws -> T) async throws -> T {
        var started: [S] = []
        do {
            for name in names { started.append(try await start(name)) }
            let result = try await body(started)
            for backend in started { await backend.stop() }
            return result
        } catch {
            for backend in started { await backend.stop() }
            throw error
        }
    }

    static func withProxy<T>(_ configuration: ProxyConfiguration, reload: (@Sendable () throws -> ProxyConfiguration)? = nil,
                             logger: Logger? = nil, accessLogDescriptor: Int32 = 2, httpEngine pinned: HTTPEngine? = nil,
                             _ body: (ProxyServer, Int) async throws -> T) async throws -> T {
        var configuration = configuration
        configuration.listen = HostPort(host: "127.0.0.1", port: 0)
        // `pinned`: a test of one engine's own behaviour runs on that engine whatever the pass.
        let engineUnderTest = pinned ?? httpEngineUnderTest
        if let engineUnderTest { configuration.httpEngine = engineUnderTest }
        if configuration.admin != nil { configuration.admin = HostPort(host: "127.0.0.1", port: 0) }
        var logger = logger ?? Logger(label: "proxy-test")
        logger.logLevel = ProcessInfo.processInfo.environment["CONCORD_PROXY_TEST_LOG"] == nil ? .warning : .debug
        var reload = reload
        if let engine = engineUnderTest, let source = reload {
            reload = {
                var next = try source()
                next.httpEngine = engine
                return next
            }
        }
        let server = try ProxyServer(configuration: configuration, logger: logger, reload: reload, accessLogDescriptor: accessLogDescriptor)
        let addresses = try await server.start()
        if configuration.mode == .http, let engine = engineUnderTest {
            // What the engine cannot do runs on SwiftNIO: only then may the engine in use differ from the one asked for.
            #expect(server.httpEngineInUse == (TCPForwardingEngine.ineligibility(of: configuration) == nil ? engine : .nio))
        }
        do {
            let result = try await body(server, addresses.listener.port!)
            await server.stop(drainTimeout: .seconds(1))
            return result
        } catch {
            await server.stop(drainTimeout: .seconds(1))
            throw error
        }
    }

    /// Waits (at most 5 s) until no backend is pending its first health check: one added by a reload joins after it.
    static func awaitFirstHealthChecks(_ server: ProxyServer) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while server.balancer.statuses().contains(where: { $0.state == "pending" }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(!server.balancer.statuses().contains(where: { $0.state == "pending" }), "\(server.balancer.statuses())")
    }

    /// `CONCORD_PROXY_TEST_HTTP_ENGINE=direct|nio`: every proxy the tests start serves `http` on that engine (the
    /// suite runs once per engine: scripts/test).
    static let httpEngineUnderTest = ProcessInfo.processInfo.environment["CONCORD_PROXY_TEST_HTTP_ENGINE"].flatMap(HTTPEngine.init(rawValue:))

    static func configuration(_ backends: [TestBackend], balance: BalanceStrategy = .hash, key: String = "cookie:sid,ip",
                              mode: ProxyMode = .http, limits: ProxyLimits = ProxyLimits()) throws -> ProxyConfiguration {
        var c = ProxyConfiguration(
            backends: try backends.map { try HostPort(parsing: $0.address) }, mode: mode, balance: balance,
            key: try KeyChain(parsing: key), limits: limits)
        c.health = quietHealth
        return c
    }

    /// Probes stay out of the way unless a test asks for them: one round at start, then every 30 s; a generous
    /// probe timeout, so a loaded test machine does not take a healthy backend down.
    static let quietHealth = HealthCheckConfiguration(interval: 30, timeout: 10, rise: 1, fall: 1, ejectAfterConnectFailures: 1)

    /// One scripted backend behind a round-robin proxy.
    static func withScriptedBackend(_ reply: @escaping @Sendable (String, Int) -> TestScriptedBackend.Reply,
                                    _ body: (Int, ProxyServer) async throws -> Void) async throws {
        let backend = try await TestScriptedBackend.start(reply)
        do {
            var config = ProxyConfiguration(backends: [try HostPort(parsing: backend.address)], balance: .roundRobin)
            config.health = ProxyHarness.quietHealth
            try await ProxyHarness.withProxy(config) { server, port in try await body(port, server) }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }
}
