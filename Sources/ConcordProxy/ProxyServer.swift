#if canImport(Glibc)
import ConcordNetworking
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import ServiceLifecycle
import UnixSignals

/// `concord proxy` as a swift-service-lifecycle `Service`: binds the client listener (L7 or L4) and the admin
/// listener, runs health checks, logs one ready line, and on graceful shutdown stops accepting, lets requests in
/// flight finish (bounded), and closes everything. On SIGHUP it re-reads its configuration and applies what
/// can change while it runs (``reload()``).
public final class ProxyServer: Service, Sendable {
    public let balancer: Balancer
    public let metrics: ProxyMetrics
    private let group: any EventLoopGroup
    private let logger: Logger
    private let reloadSource: (@Sendable () throws -> ProxyConfiguration)?
    /// The settings new client connections get; a reload replaces it.
    private let currentRuntime: NIOLockedValueBox<ProxyRuntime>
    /// Serializes reloads (SIGHUP and direct calls), so each compares against the configuration the last one set.
    private let reloading = NIOLock()

    private struct Running {
        /// The client listening sockets: one per event loop with `reusePort`, else one (none when `engine` runs).
        var listeners: [any Channel]
        /// `tcp` mode on the direct engine: its loops hold the listener and the connections.
        var engine: TCPForwardingEngine?
        var listenerAddress: SocketAddress
        var admin: (any Channel)?
        var redirect: (any Channel)?
        var pools: [NIOLoopBound<BackendConnectionPool>]
        var healthTask: Task<Void, Never>
        /// Writes buffered access log lines every second.
        var accessLogFlush: Task<Void, Never>
    }

    private let running = NIOLockedValueBox<Running?>(nil)
    /// Addresses actually bound (port 0 in the configuration becomes a real port).
    public struct Addresses: Sendable {
        public let listener: SocketAddress
        public let admin: SocketAddress?
        /// The plain-HTTP redirect listener (``ProxyConfiguration/httpRedirect``), when on.
        public var httpRedirect: SocketAddress? = nil
    }

    /// - Parameters:
    ///   - reload: called by ``reload()`` (on SIGHUP in ``run()``); returns the configuration to run with now,
    ///     e.g. the YAML file read again with the command-line flags applied on top.
    ///   - accessLogDescriptor: where access log lines go while ``ProxyConfiguration/accessLog`` is on (standard
    ///     error by default; the caller keeps the descriptor open while the proxy runs).
    public init(configuration: ProxyConfiguration, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                metrics: ProxyMetrics = ProxyMetrics(), reload: (@Sendable () throws -> ProxyConfiguration)? = nil,
                accessLogDescriptor: Int32 = 2) throws(ProxyError) {
        try configuration.validate()
        self.logger = logger
        self.group = group
        self.metrics = metrics
        self.reloadSource = reload
        self.balancer = try Balancer(
            backends: configuration.backends, algorithm: configuration.algorithm, boundedLoad: configuration.boundedLoad,
            health: configuration.health, metrics: metrics, logger: logger)
        if let drain = configuration.drain { balancer.setDraining(exactly: Set(drain.map(\.description))) }
        self.currentRuntime = NIOLockedValueBox(
            try ProxyRuntime(configuration: configuration, balancer: balancer, metrics: metrics, logger: logger,
                             accessLogSink: AccessLogSink(descriptor: accessLogDescriptor)))
    }

    /// The settings in force (after the last reload); new client connections get them.
    var runtime: ProxyRuntime { currentRuntime.withLockedValue { $0 } }

    /// What forwards `tcp` connections while the proxy runs (`nil` in `http` mode or when stopped).
    var tcpEngineInUse: TCPEngine? {
        running.withLockedValue { state in
            guard let state, configuration.mode == .tcp else { return nil }
            return state.engine == nil ? .nio : .direct
        }
    }

    /// What serves `http` connections while the proxy runs (`nil` in `tcp` mode or when stopped).
    var httpEngineInUse: HTTPEngine? {
        running.withLockedValue { state in
            guard let state, configuration.mode == .http else { return nil }
            return state.engine == nil ? .nio : .direct
        }
    }

    /// Client connections open now, on SwiftNIO's loops and the direct TCP engine's.
    var openClientConnections: Int {
        runtime.openConnections + (running.withLockedValue { $0?.engine?.openConnections } ?? 0)
    }

    /// Runs `work` on each thread of the direct engine, if it runs (tests hold its loop this way); false without it.
    func runOnDirectEngineLoops(_ work: @escaping @Sendable () -> Void) -> Bool {
        guard let engine = running.withLockedValue({ $0?.engine }) else { return false }
        engine.runOnLoops(work)
        return true
    }

    /// The largest read buffer a connection of the direct HTTP engine has had (0 without it).
    func directEngineLargestReadBuffer() async -> Int {
        guard let engine = running.withLockedValue({ $0?.engine }) else { return 0 }
        return await engine.httpLoopFigures { $0.largestReadBuffer }.max() ?? 0
    }

    /// How many deadline scans the direct HTTP engine's loops have made (0 without it).
    func directEngineDeadlineScans() async -> Int {
        guard let engine = running.withLockedValue({ $0?.engine }) else { return 0 }
        return await engine.httpLoopFigures { $0.deadlineScans }.reduce(0, +)
    }

    /// Bytes of connection buffers the direct TCP engine holds (0 without it).
    var directEngineBufferBytes: Int { running.withLockedValue { $0?.engine?.bufferBytes } ?? 0 }

    /// The configuration in force (after the last reload).
    public var configuration: ProxyConfiguration { runtime.configuration }

    /// The addresses bound by ``start()``; `nil` before it and after ``stop(drainTimeout:idleGrace:)``.
    public var addresses: Addresses? {
        running.withLockedValue { state in
            state.map { state in
                Addresses(listener: state.listenerAddress, admin: state.admin?.localAddress, httpRedirect: state.redirect?.localAddress)
            }
        }
    }

    /// How a client connection reaches the NIO path: accepted by its listener, or handed over by the direct HTTP
    /// engine (``handOff(group:initializer:logger:)``) with what its PROXY protocol header named.
    enum ClientArrival {
        case accepted
        case handedOver(ProxiedAddresses?)

        var wasAccepted: Bool { if case .accepted = self { true } else { false } }
    }

    /// A client connection's handlers, on its loop: TLS when configured, then the proxy handler of the mode (`pool`:
    /// the loop's backend pool, for `http`). `proxied`: what a PROXY protocol header named for the connection.
    private static func installClientHandlers(
        _ channel: any Channel, runtime: ProxyRuntime, pool: BackendConnectionPool?, proxied: ProxiedAddresses?
    ) throws {
        if let tls = runtime.tlsContext {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
            try channel.pipeline.syncOperations.addHandler(TLSClientConnectionHandler(
                metrics: runtime.metrics, logger: runtime.logger,
                handshakeTimeout: TimeAmount(seconds: runtime.configuration.limits.headerReadTimeout)))
        }
        if let pool, runtime.tlsContext != nil, runtime.configuration.tls?.http2 == true {
            // The client picks by ALPN: HTTP/2 streams (each bridged to the same proxy handler) or HTTP/1.1.
            let loopPool = NIOLoopBound(pool, eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    if case .negotiated("h2") = result {
                        try HTTP2ClientConnection.configure(channel, runtime: runtime, pool: loopPool.value, proxied: proxied)
                    } else {
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPProxyHandler(runtime: runtime, pool: loopPool.value, proxied: proxied))
                    }
                    runtime.tellIfStopping(channel)
                }
            })
        } else if let pool {
            // No HTTP codec: the proxy handler frames requests and writes responses as bytes.
            try channel.pipeline.syncOperations.addHandler(HTTPProxyHandler(runtime: runtime, pool: pool, proxied: proxied))
        } else {
            try channel.pipeline.syncOperations.addHandler(TCPProxyHandler(runtime: runtime, proxied: proxied))
        }
    }

    /// An accepted client connection's options, set at once on its loop: (both modes) a client that half-closes
    /// after its request still gets the response (HTTPProxyHandler closes once it is sent; TCPGlueHandler passes
    /// the EOF on). As bootstrap child options they cost ≈ 4 % of a new connection's CPU (a future chain and
    /// dynamic casts per option; `perf`, 2026-12-02 13:25). `TCP_NODELAY` is not set here: accepted sockets
    /// inherit it from the listener (``bindClientListeners(at:initializer:)``), one system call less each.
    private static func setClientOptions(_ channel: any Channel) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.allowRemoteHalfClosure, value: true)
    }

    /// Binds the listeners and starts health checks; returns the bound addresses after logging the ready line.
    @discardableResult
    public func start() async throws -> Addresses {
        let configuration = self.configuration
        let limits = configuration.limits
        var pools: [NIOLoopBound<BackendConnectionPool>] = []
        let backendTLS = runtime.backendTLS
        for loop in group.makeIterator() {
            pools.append(try await loop.submit {
                let pool = BackendConnectionPool(eventLoop: loop, limits: limits)
                pool.tls = backendTLS
                return NIOLoopBound(pool, eventLoop: loop)
            }.get())
        }
        let poolTable = pools
        // Each accepted connection takes the settings in force at that moment (a reload swaps them).
        let runtimes = currentRuntime
        let listenAddress: SocketAddress
        do { listenAddress = try configuration.listen.socketAddress() } catch { throw error }

        let mode = configuration.mode
        let logger = self.logger
        // `.handedOver`: a connection the direct HTTP engine hands over, which the engine counts against
        // maxConnections until it closes, and whose PROXY protocol header (if any) it has read.
        let setUpClient: @Sendable (any Channel, ClientArrival) -> EventLoopFuture<Void> = { channel, arrival in
            channel.eventLoop.makeCompletedFuture {
                do {
                    try Self.setClientOptions(channel)
                    let runtime = runtimes.withLockedValue { $0 }
                    guard runtime.admitConnection(channel, counted: arrival.wasAccepted) else {
                        channel.close(promise: nil)
                        return
                    }
                    let pool = mode == .http ? poolTable.first { $0.eventLoop === channel.eventLoop }!.value : nil
                    if case .handedOver(let proxied) = arrival {
                        try Self.installClientHandlers(channel, runtime: runtime, pool: pool, proxied: proxied)
                        return
                    }
                    try ProxyProtocolReceiver.setUp(channel, runtime: runtime) { channel, proxied in
                        try Self.installClientHandlers(channel, runtime: runtime, pool: pool, proxied: proxied)
                    }
                } catch {
                    // NIO closes the connection; without this line the client's reset would be the only trace.
                    logger.error("could not set up the connection from \(channel.remoteAddress?.description ?? "an unknown address"): \(error)")
                    throw error
                }
            }
        }
        let initializeClient: @Sendable (any Channel) -> EventLoopFuture<Void> = { setUpClient($0, .accepted) }
        let initializeHandedOver: @Sendable (any Channel, ProxiedAddresses?) -> EventLoopFuture<Void> = {
            setUpClient($0, .handedOver($1))
        }
        var listeners: [any Channel] = []
        var engine: TCPForwardingEngine?
        let listenerAddress: SocketAddress
        let wantsDirect = mode == .tcp ? configuration.tcpEngine == .direct : configuration.httpEngine == .direct
        let directRefusal = wantsDirect ? TCPForwardingEngine.ineligibility(of: configuration) : nil
        if wantsDirect && directRefusal == nil {
            let threads = group.makeIterator().reduce(0) { count, _ in count + 1 }
            let kind: DirectEngineKind = mode == .tcp ? .tcp : .http(handOff: Self.handOff(group: group, initializer: initializeHandedOver, logger: logger))
            let started = try TCPForwardingEngine(
                kind: kind, listen: listenAddress, reusePort: configuration.reusePort, threads: threads,
                cpus: configuration.cpuAffinity == .auto ? EventLoopCPUAffinity.allowedCPUs() : nil,
                runtimes: runtimes, display: configuration.listen, logger: logger)
            engine = started
            listenerAddress = started.localAddress
        } else {
            if let directRefusal { logger.info("\(mode) engine: nio (the direct engine does not do \(directRefusal))") }
            listeners = try await bindClientListeners(at: listenAddress, initializer: initializeClient)
            listenerAddress = listeners[0].localAddress!
        }
        let closeClientListeners: @Sendable () async -> Void = { [listeners, engine] in
            for listener in listeners { try? await listener.close() }
            await engine?.shutdown()
        }

        var adminChannel: (any Channel)?
        if let admin = configuration.admin {
            do {
                adminChannel = try await AdminServer.bind(to: try admin.socketAddress(), group: group, balancer: balancer, metrics: metrics, logger: logger)
            } catch {
                await closeClientListeners()
                throw error as? ProxyError ?? ProxyError.cannotListen(on: admin, role: "admin API", error: error)
            }
        }
        var redirectChannel: (any Channel)?
        if let redirect = configuration.httpRedirect {
            let httpsPort = redirect.httpsPort ?? listenerAddress.port ?? configuration.listen.port
            do {
                redirectChannel = try await HTTPSRedirectServer.bind(
                    to: try redirect.listen.socketAddress(), httpsPort: httpsPort, group: group, runtime: runtimes)
            } catch {
                await closeClientListeners()
                if let adminChannel { try? await adminChannel.close() }
                throw error as? ProxyError ?? ProxyError.cannotListen(on: redirect.listen, role: "HTTP redirect", error: error)
            }
        }
        let checker = HealthChecker(balancer: balancer, group: group, backendTLS: { runtimes.withLockedValue { $0.backendTLS } })
        let healthTask = Task { await checker.run() }
        let sink = currentRuntime.withLockedValue { $0.accessLogSink }
        let accessLogFlush = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                sink.flush()
            }
        }
        running.withLockedValue {
            $0 = Running(listeners: listeners, engine: engine, listenerAddress: listenerAddress, admin: adminChannel, redirect: redirectChannel, pools: pools, healthTask: healthTask,
                         accessLogFlush: accessLogFlush)
        }
        let addresses = Addresses(listener: listenerAddress, admin: adminChannel?.localAddress,
                                  httpRedirect: redirectChannel?.localAddress)
        for setting in configuration.settingsWithoutEffect { logger.warning("\(setting) has no effect") }
        logger.notice("\(readyLine(addresses))")
        return addresses
    }

    /// How the direct HTTP engine hands a client connection to the NIO path: a channel on one of the group's loops for
    /// the accepted socket, set up as an accepted connection is (`initializer`), which first reads the bytes the
    /// engine had read (``ReplayedBytesHandler``).
    static func handOff(group: any EventLoopGroup,
                        initializer: @escaping @Sendable (any Channel, ProxiedAddresses?) -> EventLoopFuture<Void>,
                        logger: Logger) -> HTTPForwardingLoop.HandOff {
        { fd, bytes, proxied, closed in
            // `closed` gives the connection's admission back, exactly once: from the channel's close, or here when
            // the hand-off failed before the initializer saw a channel (making the channel or applying its options).
            let initialized = NIOLockedValueBox(false)
            ClientBootstrap(group: group.next())
                .channelInitializer { channel in
                    initialized.withLockedValue { $0 = true }
                    channel.closeFuture.whenComplete { _ in closed() }
                    return initializer(channel, proxied).flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(ReplayedBytesHandler(bytes), position: .first)
                    }
                }
                .withConnectedSocket(fd)
                .whenFailure { error in
                    logger.warning("could not hand a client connection to SwiftNIO: \(error)")
                    if !initialized.withLockedValue({ $0 }) { closed() }
                }
        }
    }

    /// Binds the client listener: with ``ProxyConfiguration/reusePort``, one socket per event loop (SO_REUSEPORT),
    /// each accepting onto its own loop — an accepted connection is set up where it will be served, with no
    /// hand-off to another thread (nginx `reuseport`, HAProxy's per-thread listeners; 1.05x the new connections
    /// per second); without, one socket for the whole group.
    private func bindClientListeners(at listenAddress: SocketAddress,
                                     initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) async throws(ProxyError) -> [any Channel] {
        let configuration = self.configuration
        let alarm = balancer.localResources
        var listeners: [any Channel] = []
        do {
            var address = listenAddress
            let acceptors: [(group: any EventLoopGroup, childGroup: any EventLoopGroup)] =
                configuration.reusePort ? group.makeIterator().map { ($0, $0) } : [(group, group)]
            for acceptor in acceptors {
                let bootstrap = ServerBootstrap(group: acceptor.group, childGroup: acceptor.childGroup)
                    .serverChannelOption(.backlog, value: 1024)
                    // No Nagle delay on small responses; Linux copies it to every accepted socket. (A TCP-level
                    // option: `.socketOption(.tcp_nodelay)` would be SOL_SOCKET's option 1, SO_DEBUG, which only
                    // root may set — every connection of a proxy run by another user failed on it.)
                    .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: configuration.reusePort ? 1 : 0)
                    .serverChannelInitializer(AcceptPauseHandler.installer(alarm: alarm))
                    // The accepted channel's options are set by `initializer` (``setClientOptions(_:)``), not as
                    // child channel options, which the bootstrap applies through a chain of futures per connection.
                    .childChannelInitializer(initializer)
                let channel = try await bootstrap.bind(to: address).get()
                listeners.append(channel)
                // Port 0 asked for any port: the other loops' sockets join the one the first got.
                if let bound = channel.localAddress?.port { address.port = bound }
            }
        } catch {
            for channel in listeners { try? await channel.close() }
            throw ProxyError.cannotListen(on: configuration.listen, role: "client listener", error: error)
        }
        return listeners
    }

    /// `concord proxy listening on 127.0.0.1:8080 (mode http, balance hash cookie:sid → ip, algorithm ring, 3 backends)`.
    func readyLine(_ addresses: Addresses) -> String {
        let configuration = self.configuration
        let shown = HostPort(host: configuration.listen.host, port: addresses.listener.port ?? configuration.listen.port)
        var line = "concord proxy listening on \(shown) (\(configuration.summary)"
        if let engine = tcpEngineInUse { line += ", tcp engine \(engine)" }
        if let engine = httpEngineInUse { line += ", http engine \(engine)" }
        line += ")"
        if let admin = addresses.admin, let adminConfig = configuration.admin {
            line += "; admin and /metrics on \(HostPort(host: adminConfig.host, port: admin.port ?? adminConfig.port))"
        }
        if let redirect = addresses.httpRedirect, let redirectConfig = configuration.httpRedirect {
            line += "; HTTP on \(HostPort(host: redirectConfig.listen.host, port: redirect.port ?? redirectConfig.listen.port)) redirects to HTTPS"
        }
        return line
    }

    /// Stops accepting, waits up to `drainTimeout` for open client connections to finish, then closes the rest.
    /// HTTP connections finish on their own: each response from then on says `Connection: close` and closes its
    /// connection, and a connection idle for `idleGrace` closes (a request already on its way is answered).
    public func stop(drainTimeout: Duration = .seconds(5), idleGrace: Duration = .milliseconds(500)) async {
        guard let state = running.withLockedValue({ r -> Running? in defer { r = nil }; return r }) else { return }
        state.healthTask.cancel()
        for listener in state.listeners { try? await listener.close() }
        await state.engine?.stopAccepting()
        if let admin = state.admin { try? await admin.close() }
        if let redirect = state.redirect { try? await redirect.close() }
        runtime.announceStop(idleGrace: TimeAmount(idleGrace))
        state.engine?.announceStop(idleGrace: Double(idleGrace.components.seconds) + Double(idleGrace.components.attoseconds) / 1e18)
        let deadline = ContinuousClock.now.advanced(by: drainTimeout)
        let runtime = self.runtime
        let engine = state.engine
        while runtime.openConnections + (engine?.openConnections ?? 0) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Keep-alive clients, L4 pairs and WebSocket tunnels may stay open for long: past the drain timeout they
        // are closed here, so nothing is still forwarded once stop returns.
        var cut = await runtime.closeOpenConnections()
        if let engine {
            cut += await engine.closeAll()
            await engine.shutdown()
        }
        if cut > 0 { logger.notice("closed \(cut) client connection(s) still open after the \(drainTimeout) drain timeout") }
        for pool in state.pools {
            try? await pool.eventLoop.submit { pool.value.closeAll() }.get()
        }
        await state.healthTask.value
        state.accessLogFlush.cancel()
        await state.accessLogFlush.value
        runtime.accessLogSink.flush()
        logger.notice("concord proxy stopped")
    }

    /// Re-reads the configuration from the reload source given to `init` and applies it (``apply(_:)``): what
    /// SIGHUP does. Returns `nil`, changing nothing, when there is no reload source.
    @discardableResult
    public func reload() throws -> ProxyReload? {
        guard let reloadSource else {
            logger.notice("reload: no --config file to read again; nothing to reload")
            return nil
        }
        return try apply(reloadSource())
    }

    /// Applies a new configuration while the proxy runs, all or nothing (on an error nothing changes):
    /// - `backends`, `algorithm`, `boundedLoad` and `health` go to the balancer at once (health state, drain and
    ///   load carry over by backend id; the health checker reads its settings every round);
    /// - `drain`, when the list changed, makes exactly the listed backends drain;
    /// - `limits`, `balance`, `key`, `stickyCookie`, `trustedProxies`, the prefix lengths, `proxyProtocol`,
    ///   `acceptProxyProtocol` and `responseHeaders` apply to client connections accepted from now on (open ones
    ///   finish with theirs); `maxConnections` and the backend pools' `connectTimeout` /
    ///   `maxIdleConnectionsPerBackend` apply at once;
    /// - `listen`, `mode`, `admin` and `adminAllowRemote` are bound to listening sockets: they keep their current
    ///   values and the log says a restart is needed.
    /// Settings compare with the configuration in force, so a setting the file did not change keeps what the
    /// admin API did to it (added or removed backends, drains).
    @discardableResult
    public func apply(_ new: ProxyConfiguration) throws(ProxyError) -> ProxyReload {
        reloading.lock()
        defer { reloading.unlock() }
        let current = runtime
        let plan = ProxyReload(current: current.configuration, new: new)
        let next = plan.configuration
        try next.validate()
        if running.withLockedValue({ $0?.engine != nil }), let reason = TCPForwardingEngine.ineligibility(of: next) {
            throw ProxyError.invalidSetting(
                "reload: \(reason) needs the nio engine, and this proxy runs the direct one: restart it, or set \(next.mode == .tcp ? "tcpEngine" : "httpEngine"): nio")
        }
        let nextRuntime = try current.reconfigured(next)
        let changed = Set(plan.applied)
        if !changed.isDisjoint(with: [.backends, .algorithm, .boundedLoad, .health]) {
            try balancer.reconfigure(
                backends: changed.contains(.backends) ? next.backends : nil,
                algorithm: next.algorithm, boundedLoad: next.boundedLoad, health: next.health)
        }
        if changed.contains(.drain) { balancer.setDraining(exactly: Set((next.drain ?? []).map(\.description))) }
        currentRuntime.withLockedValue { $0 = nextRuntime }
        for setting in next.settingsWithoutEffect { logger.warning("reload: \(setting) has no effect") }
        if let pools = running.withLockedValue({ $0?.pools }) {
            // New backend connections get the new limits and TLS (its CA file read again); open ones keep theirs.
            let tls = nextRuntime.backendTLS
            for pool in pools {
                pool.eventLoop.execute {
                    pool.value.limits = next.limits
                    pool.value.tls = tls
                }
            }
        }
        for setting in plan.needsRestart {
            logger.warning("reload: \(setting) changed to \(new.describe(setting)) but takes effect only after a restart; still \(current.configuration.describe(setting))")
        }
        logger.notice("reload: \(plan.applied.isEmpty ? "no setting changed that applies at run time" : "applied " + plan.applied.map(\.rawValue).joined(separator: ", "))")
        if let tls = next.tls {
            // Said even when no setting changed: after a certificate renewal this is the line an operator looks for.
            let files = ([tls.certificateChain] + tls.sni.map(\.certificateChain)).joined(separator: ", ")
            if nextRuntime.tlsContext === current.tlsContext {
                logger.notice("reload: TLS certificates read again from \(files): unchanged, so clients keep resuming their TLS sessions")
            } else {
                logger.notice("reload: TLS certificates read again from \(files): new ones in force for new connections")
            }
        }
        return plan
    }

    /// Runs until graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`); reloads on SIGHUP.
    public func run() async throws {
        // Trap SIGHUP before the ready line, so a reload sent as soon as the proxy is ready never terminates it
        // (SIGHUP's default action). It is trapped even without a reload source.
        let sighups = await UnixSignalsSequence(trapping: .sighup)
        try await start()
        // Not a child task: a signal sequence need not end promptly on cancellation, and shutdown must not wait.
        let sighup = Task { [self] in
            for await _ in sighups {
                if Task.isCancelled { return }
                do {
                    try reload()
                } catch {
                    logger.error("SIGHUP: reload failed, keeping the current configuration: \(error)")
                }
            }
        }
        try? await gracefulShutdown()
        sighup.cancel()
        await stop()
    }
}
