import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// `concord proxy` as a swift-service-lifecycle `Service`: binds the client listener (L7 or L4) and the admin
/// listener, runs health checks, logs one ready line, and on graceful shutdown stops accepting, lets requests in
/// flight finish (bounded), and closes everything.
public final class ProxyServer: Service, Sendable {
    public let configuration: ProxyConfiguration
    public let balancer: Balancer
    public let metrics: ProxyMetrics
    let runtime: ProxyRuntime
    private let group: any EventLoopGroup
    private let logger: Logger
    private let reloadBackends: (@Sendable () throws -> [HostPort])?

    private struct Running {
        var listener: any Channel
        var admin: (any Channel)?
        var pools: [NIOLoopBound<BackendConnectionPool>]
        var healthTask: Task<Void, Never>
    }

    private let running = NIOLockedValueBox<Running?>(nil)
    /// Addresses actually bound (port 0 in the configuration becomes a real port).
    public struct Addresses: Sendable {
        public let listener: SocketAddress
        public let admin: SocketAddress?
    }

    /// - Parameters:
    ///   - reloadBackends: called on SIGHUP (from ``run()``); returns the new backend list (e.g. re-read YAML).
    public init(configuration: ProxyConfiguration, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                metrics: ProxyMetrics = ProxyMetrics(), reloadBackends: (@Sendable () throws -> [HostPort])? = nil) throws(ProxyError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.group = group
        self.metrics = metrics
        self.reloadBackends = reloadBackends
        self.balancer = try Balancer(
            backends: configuration.backends, algorithm: configuration.algorithm, boundedLoad: configuration.boundedLoad,
            health: configuration.health, metrics: metrics, logger: logger)
        self.runtime = try ProxyRuntime(configuration: configuration, balancer: balancer, metrics: metrics, logger: logger)
    }

    /// Binds the listeners and starts health checks; returns the bound addresses after logging the ready line.
    @discardableResult
    public func start() async throws -> Addresses {
        let limits = configuration.limits
        var pools: [NIOLoopBound<BackendConnectionPool>] = []
        for loop in group.makeIterator() {
            pools.append(try await loop.submit { NIOLoopBound(BackendConnectionPool(eventLoop: loop, limits: limits), eventLoop: loop) }.get())
        }
        let poolTable = pools
        let runtime = self.runtime
        let listenAddress: SocketAddress
        do { listenAddress = try configuration.listen.socketAddress() } catch { throw error }

        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: configuration.mode == .tcp)
        let listener: any Channel
        switch configuration.mode {
        case .http:
            listener = try await bootstrap.childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard runtime.admitConnection() else {
                        channel.close(promise: nil)
                        return
                    }
                    channel.closeFuture.whenComplete { _ in runtime.connectionClosed() }
                    let pool = poolTable.first { $0.eventLoop === channel.eventLoop }!.value
                    let observer = RequestStartObserver()
                    let decoderLimits = { () -> NIOHTTPDecoderLimitConfiguration in
                        var l = NIOHTTPDecoderLimitConfiguration()
                        l.maxHeaderListSize = limits.maxHeaderBytes
                        l.maxHeaderFieldSize = limits.maxHeaderBytes
                        l.maxHeaderFieldCount = limits.maxHeaderCount
                        return l
                    }()
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(observer)
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(
                        leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: decoderLimits)))
                    try sync.addHandler(HTTPProxyHandler(runtime: runtime, pool: pool, observer: observer))
                }
            }.bind(to: listenAddress).get()
        case .tcp:
            listener = try await bootstrap.childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard runtime.admitConnection() else {
                        channel.close(promise: nil)
                        return
                    }
                    channel.closeFuture.whenComplete { _ in runtime.connectionClosed() }
                    try channel.pipeline.syncOperations.addHandler(TCPProxyHandler(runtime: runtime))
                }
            }.bind(to: listenAddress).get()
        }

        var adminChannel: (any Channel)?
        if let admin = configuration.admin {
            do {
                adminChannel = try await AdminServer.bind(to: try admin.socketAddress(), group: group, balancer: balancer, metrics: metrics, logger: logger)
            } catch {
                try? await listener.close()
                throw error
            }
        }
        let checker = HealthChecker(balancer: balancer, group: group)
        let healthTask = Task { await checker.run() }
        running.withLockedValue {
            $0 = Running(listener: listener, admin: adminChannel, pools: pools, healthTask: healthTask)
        }
        let addresses = Addresses(listener: listener.localAddress!, admin: adminChannel?.localAddress)
        logger.notice("\(readyLine(addresses))")
        return addresses
    }

    /// `concord proxy listening on 127.0.0.1:8080 (mode http, balance hash cookie:sid → ip, algorithm ring, 3 backends)`.
    func readyLine(_ addresses: Addresses) -> String {
        let shown = HostPort(host: configuration.listen.host, port: addresses.listener.port ?? configuration.listen.port)
        var line = "concord proxy listening on \(shown) (\(configuration.summary))"
        if let admin = addresses.admin, let adminConfig = configuration.admin {
            line += "; admin and /metrics on \(HostPort(host: adminConfig.host, port: admin.port ?? adminConfig.port))"
        }
        return line
    }

    /// Stops accepting, waits up to `drainTimeout` for open client connections to finish, then closes the rest.
    public func stop(drainTimeout: Duration = .seconds(5)) async {
        guard let state = running.withLockedValue({ r -> Running? in defer { r = nil }; return r }) else { return }
        state.healthTask.cancel()
        try? await state.listener.close()
        if let admin = state.admin { try? await admin.close() }
        let deadline = ContinuousClock.now.advanced(by: drainTimeout)
        while runtime.openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for pool in state.pools {
            try? await pool.eventLoop.submit { pool.value.closeAll() }.get()
        }
        await state.healthTask.value
        logger.notice("concord proxy stopped")
    }

    /// Runs until graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`); reloads backends on SIGHUP.
    public func run() async throws {
        try await start()
        // Not a child task: a signal sequence need not end promptly on cancellation, and shutdown must not wait.
        // SIGHUP is trapped even without a reload source, so it never terminates the proxy.
        let sighup = Task { [balancer, logger, reloadBackends] in
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                if Task.isCancelled { return }
                guard let reloadBackends else {
                    logger.notice("SIGHUP: no --config file (or --backend flags pin the list); nothing to reload")
                    continue
                }
                do {
                    try balancer.replaceBackends(try reloadBackends())
                    logger.notice("SIGHUP: configuration reloaded")
                } catch {
                    logger.error("SIGHUP: reload failed, keeping the current backends: \(error)")
                }
            }
        }
        try? await gracefulShutdown()
        sighup.cancel()
        await stop()
    }
}
