import ArgumentParser
import ConcordHashing
import ConcordNetworking
import ConcordProxy
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle

/// `concord proxy`: the L4/L7 reverse proxy with session affinity. The flags are a contract (the lab and the
/// benchmark scripts drive it this way); a YAML file (`--config`) holds the same settings and more, flags win.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the L4 (TCP) / L7 (HTTP/1.1, and HTTP/2 over TLS) reverse proxy with session affinity.",
        discussion: """
            Examples:
              concord proxy --listen 127.0.0.1:8080 \\
                --backend 127.0.0.1:9001 --backend 127.0.0.1:9002 \\
                --mode http --balance hash --key cookie:sid,ip \\
                --algorithm ring --health-path /health
              concord proxy --listen 127.0.0.1:8080 \\
                --backend 127.0.0.1:9001 --mode tcp --balance hash --key ip
              concord proxy --config proxy.yaml --admin 127.0.0.1:9900
            Without flags or a file: listen 127.0.0.1:8080, mode http, balance hash, \
            key ip, algorithm ring, TCP connect health checks.

            It logs one line when it is listening and ready. SIGHUP re-reads the --config file (flags still win) \
            and applies what can change while running (backends, drain, health, limits, keys; listen, mode and \
            admin need a restart); SIGTERM/SIGINT shut down gracefully. See docs/proxy.md.
            """
    )

    @Option(help: "Address clients connect to, HOST:PORT (default: 127.0.0.1:8080).")
    var listen: String?

    @Option(name: .customLong("backend"), help: "A backend HOST:PORT (repeat for each).")
    var backends: [String] = []

    @Option(help: "http (L7) or tcp (L4) (default: http).")
    var mode: String?

    @Option(help: "hash, round-robin, least-conn or sticky-cookie (default: hash).")
    var balance: String?

    @Option(help: "Hash key chain for --balance hash: cookie:NAME|header:NAME|query:NAME|path|ip, comma-separated fallbacks (default: ip; concord app's session cookie is concord_session).")
    var key: String?

    @Option(help: "modulo, ring, jump, maglev or rendezvous (default: ring).")
    var algorithm: String?

    @Option(name: .customLong("bounded-load"), help: "Bounded-load factor > 1 (e.g. 1.25).")
    var boundedLoad: Double?

    @Option(name: .customLong("health-path"), help: "HTTP path for active health checks (default: TCP connect checks).")
    var healthPath: String?

    @Option(help: "Admin API and /metrics listener, HOST:PORT (loopback).")
    var admin: String?

    @Option(name: .customLong("cpu-affinity"), help: "auto (pin event loop i to the i-th allowed CPU; the default) or off.")
    var cpuAffinity: String?

    @Option(name: .customLong("tcp-engine"),
            help: "tcp mode: direct (the proxy's own epoll loops; the default, when no TLS is set) or nio.")
    var tcpEngine: String?

    @Option(name: .customLong("http-engine"),
            help: "http mode: direct (the proxy's own epoll loops; the default, when no TLS is set) or nio.")
    var httpEngine: String?

    @Option(name: .customLong("event-loops"), help: "Event loops (threads) to serve on, 1...1024 (default: one per CPU the process may use).")
    var eventLoops: Int?

    @Option(name: .customLong("max-connections"),
            help: "Client connections open at once; more are closed on accept (default 10000). Each can use two descriptors.")
    var maxConnections: Int?

    @Option(name: .customLong("max-requests-per-backend"),
            help: "Requests (tcp: connections) one backend gets at once; more wait in the proxy's queue (default: no limit).")
    var maxRequestsPerBackend: Int?

    @Option(name: .customLong("queue-timeout"), help: "Seconds a request may wait in a backend's queue before a 503 (default 5).")
    var queueTimeout: Double?

    @Option(name: .customLong("max-queue-per-backend"), help: "Requests that may wait for one backend; more get a 503 at once (default: no bound).")
    var maxQueuePerBackend: Int?

    @Flag(name: .customLong("abort-queued-on-close"), help: "Drop a queued request whose client sends EOF (default: answer half-closed clients).")
    var abortQueuedOnClose = false

    @Option(name: .customLong("tls-certificate"),
            help: "PEM certificate chain: clients connect with TLS, backends get plain HTTP/TCP (needs --tls-key; re-read on SIGHUP).")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-certificate (unencrypted).")
    var tlsKey: String?

    @Flag(name: .customLong("http2"),
          help: "Offer HTTP/2 to clients by ALPN (h2, then http/1.1; needs the TLS flags or tls in --config, and --mode http). Backends still get HTTP/1.1.")
    var http2 = false

    @Option(name: .customLong("http-redirect"),
            help: "Also listen for plain HTTP on HOST:PORT and answer every request 308 to the same URL over HTTPS (needs the TLS flags).")
    var httpRedirect: String?

    @Flag(name: .customLong("backend-tls"), help: "Speak TLS to the backends and check their certificates against the system's trust store (or --backend-ca).")
    var backendTLS = false

    @Option(name: .customLong("backend-ca"), help: "PEM file of the CAs that sign the backends' certificates (implies --backend-tls).")
    var backendCA: String?

    @Flag(name: .customLong("reuse-port"), inversion: .prefixedNo,
          help: "One listening socket per event loop (SO_REUSEPORT; the default) or one for all (--no-reuse-port).")
    var reusePort: Bool?

    @Option(help: "YAML configuration file (same settings; flags override it).")
    var config: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(name: .customLong("access-log"), help: "Write one access log line per HTTP exchange / TCP connection to stderr (whatever --log-level says).")
    var accessLog = false

    @Option(name: .customLong("response-header"),
            help: "A field added to every response, the backends' and the proxy's own, 'Name: value' (repeatable), e.g. 'Strict-Transport-Security: max-age=31536000'.")
    var responseHeaders: [String] = []

    @Flag(name: .customLong("accept-proxy-protocol"),
          help: "Every client connection starts with a PROXY protocol header (v1 or v2) from a load balancer in front; its source address is the client's. Connections without one are closed.")
    var acceptProxyProtocol = false

    /// The file's settings (or the defaults) with every given flag applied on top.
    /// Checked once, when the command line is parsed (``makeConfiguration()`` also runs on every SIGHUP).
    /// (Here rather than in `run()` so that a bad flag or file prints this command's usage, not `concord`'s.)
    func validate() throws {
        _ = try CommandLogging.level(parsing: logLevel)
        do { _ = try makeConfiguration() } catch let error as ValidationError { throw error } catch let error as ProxyError {
            throw ValidationError(error.description)
        } catch {
            throw ValidationError("\(error)")  // e.g. an unknown --algorithm (exit 1 before, not 64 as every other flag)
        }
    }

    func makeConfiguration() throws -> ProxyConfiguration {
        var configuration = try config.map { try ProxyConfiguration.load(yamlFile: $0) } ?? ProxyConfiguration()
        if let listen { configuration.listen = try HostPort(parsing: listen) }
        if !backends.isEmpty { configuration.backends = try backends.map { try HostPort(parsing: $0) } }
        if let mode {
            guard let parsed = ProxyMode(rawValue: mode) else { throw ValidationError("--mode must be http or tcp, got '\(mode)'") }
            configuration.mode = parsed
        }
        if let balance {
            guard let parsed = BalanceStrategy(rawValue: balance) else {
                throw ValidationError("--balance must be one of \(BalanceStrategy.allCases.map(\.rawValue).joined(separator: ", ")), got '\(balance)'")
            }
            configuration.balance = parsed
        }
        if let key { configuration.key = try KeyChain(parsing: key) }
        if let algorithm { configuration.algorithm = try HashAlgorithm(name: algorithm) }
        if let boundedLoad { configuration.boundedLoad = boundedLoad }
        if let healthPath { configuration.health.path = healthPath }
        if let admin { configuration.admin = try HostPort(parsing: admin) }
        if accessLog { configuration.accessLog = true }
        if acceptProxyProtocol { configuration.acceptProxyProtocol = true }
        if !responseHeaders.isEmpty { configuration.responseHeaders = responseHeaders }
        if let tcpEngine {
            guard let parsed = TCPEngine(rawValue: tcpEngine) else {
                throw ValidationError("--tcp-engine must be direct or nio, got '\(tcpEngine)'")
            }
            configuration.tcpEngine = parsed
        }
        if let httpEngine {
            guard let parsed = HTTPEngine(rawValue: httpEngine) else {
                throw ValidationError("--http-engine must be direct or nio, got '\(httpEngine)'")
            }
            configuration.httpEngine = parsed
        }
        if let cpuAffinity {
            guard let parsed = CPUAffinity(rawValue: cpuAffinity) else {
                throw ValidationError("--cpu-affinity must be auto or off, got '\(cpuAffinity)'")
            }
            configuration.cpuAffinity = parsed
        }
        if let eventLoops { configuration.eventLoops = eventLoops }
        if let maxConnections { configuration.limits.maxConnections = maxConnections }
        if let maxRequestsPerBackend { configuration.limits.maxRequestsPerBackend = maxRequestsPerBackend }
        if let queueTimeout { configuration.limits.queueTimeout = queueTimeout }
        if let maxQueuePerBackend { configuration.limits.maxQueuePerBackend = maxQueuePerBackend }
        if abortQueuedOnClose { configuration.limits.abortQueuedOnClose = true }
        switch (tlsCertificate, tlsKey) {
        case (nil, nil): break
        case (let certificate?, let key?):
            // The flags replace the file's default certificate only; its other TLS settings (sni, clientCA,
            // minimumVersion) stay, as with --backend-ca and --http-redirect.
            var tls = configuration.tls ?? ProxyTLSConfiguration(certificateChain: certificate, privateKey: key)
            tls.certificateChain = certificate
            tls.privateKey = key
            configuration.tls = tls
        case (nil, _?): throw ValidationError("--tls-key needs --tls-certificate (the PEM certificate chain it belongs to)")
        case (_?, nil): throw ValidationError("--tls-certificate needs --tls-key (the PEM private key of the certificate)")
        }
        if http2 {
            guard configuration.tls != nil else {
                throw ValidationError("--http2 is offered by ALPN during the TLS handshake: it needs --tls-certificate and --tls-key (or tls in --config)")
            }
            configuration.tls?.http2 = true
        }
        if let reusePort { configuration.reusePort = reusePort }
        if backendTLS || backendCA != nil {
            var settings = configuration.backendTLS ?? BackendTLSConfiguration()
            if let backendCA { settings.caFile = backendCA }
            configuration.backendTLS = settings
        }
        if let httpRedirect {
            configuration.httpRedirect = HTTPRedirectConfiguration(
                listen: try HostPort(parsing: httpRedirect), httpsPort: configuration.httpRedirect?.httpsPort)
        }
        if configuration.mode == .tcp && configuration.key.sources != [.ip] && key != nil {
            throw ValidationError("--mode tcp hashes the client address only: use --key ip (or leave --key out)")
        }
        for (flag, given) in [("--key", key != nil), ("--algorithm", algorithm != nil)] where given && configuration.balance != .hash {
            throw ValidationError("\(flag) is for --balance hash; --balance \(configuration.balance.rawValue) would ignore it: leave \(flag) out")
        }
        try configuration.validate()
        return configuration
    }

    func run() async throws {
        let configuration: ProxyConfiguration
        do { configuration = try makeConfiguration() } catch let error as ProxyError {
            throw ValidationError(error.description)
        }
        CommandLogging.bootstrap(level: try CommandLogging.level(parsing: logLevel), to: .standardError)
        let logger = Logger(label: "concord.proxy")
        // A client connection and its backend connection are two descriptors each (HTTP/1 backends are pooled).
        // Below one per client the limit is certainly too low (a warning); below two, only with every client's
        // backend connection open at once (a notice: Debian's default hard limit, 20000, is just under the default's).
        let needed = UInt64(configuration.limits.maxConnections) * 2 + 64
        if let files = OpenFileLimit.raise(), files < needed {
            let level: Logger.Level = files < UInt64(configuration.limits.maxConnections) + 64 ? .warning : .notice
            logger.log(level: level, """
                the open-file limit is \(files), below the \(needed) that maxConnections \(configuration.limits.maxConnections) can use \
                (a client and a backend connection each): past it, connections get 503 until descriptors free up; \
                raise it (ulimit -n, systemd LimitNOFILE=) or lower --max-connections (limits.maxConnections)
                """)
        }
        // SIGHUP reads the file again and applies the flags on top, so what a flag set stays as the flag says; with
        // flags only it reads the TLS files again (a renewed certificate; it did nothing at all before 2026-12-03).
        let reload: @Sendable () throws -> ProxyConfiguration = { [command = self] in try command.makeConfiguration() }
        // The proxy owns this process's loops: NIO's singleton group (one per CPU) unless a count is given.
        let loops = configuration.eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
        let group = loops ?? MultiThreadedEventLoopGroup.singleton
        if configuration.cpuAffinity == .auto, let cpus = await EventLoopCPUAffinity.pin(group, logger: logger) {
            logger.info("event loops pinned to CPUs \(cpus.map(String.init).joined(separator: ", ")) (--cpu-affinity off to let them move)")
        }
        defer { loops?.shutdownGracefully { _ in } }
        let server = try ProxyServer(configuration: configuration, logger: logger, group: group, reload: reload)
        let services = ServiceGroup(
            services: [server], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await services.run() }
            if let parent = ProcessInfo.processInfo.environment["CONCORD_PARENT_PID"].flatMap(Int32.init) {
                // Launched by the lab: stop when the lab process is gone, so no proxy outlives it.
                tasks.addTask {
                    while kill(parent, 0) == 0 { try await Task.sleep(for: .seconds(1)) }
                    logger.notice("parent process \(parent) exited; shutting down")
                    await services.triggerGracefulShutdown()
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }
}
