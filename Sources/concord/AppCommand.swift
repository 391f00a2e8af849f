import ArgumentParser
import ConcordApp
import ConcordNetworking
import ConcordProxy
import Foundation
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle

/// `concord app`: the demo web app (login, profile, cart) with any session strategy; the lab and the browser
/// test drive it, and people can click through it.
struct AppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "app",
        abstract: "Run the demo web app (login, profile, cart) with a session strategy.",
        discussion: """
            Open http://HOST:PORT/login in a browser; any user name logs in with the password `concord`. \
            Every page and every response (header X-Concord-Node) names the node that served it. \
            /health, /ready and /metrics (Prometheus text) are for the proxy and the lab.
            """
    )

    @Option(help: "Where sessions live: local, sync, client, store, ring, store+near-cache.")
    var strategy: String = "local"

    @Option(name: .customLong("node-id"), help: "This node's name (X-Concord-Node).")
    var nodeID: String = "node-1"

    @Option(help: "Listening address.")
    var host: String = "127.0.0.1"

    @Option(help: "Listening port.")
    var port: Int = 8080

    @Option(help: "Store URL for store and store+near-cache: sqlite:PATH, redis://HOST:PORT (rediss:// for TLS; Redis Cluster: redis://HOST:PORT,redis://HOST:PORT,… seeds; redis-sentinel://HOST:PORT,…#MASTER, rediss-sentinel:// with TLS), postgres://USER@HOST:PORT/DB; or env CONCORD_STORE (a URL with a password stays out of ps).")
    var store: String = Self.defaultStore
    static let defaultStore = "sqlite:concord-sessions.sqlite"

    @Option(help: "Replication peers for sync and ring, comma-separated NODE-ID@HOST:PORT.")
    var peers: String?

    @Option(name: .customLong("replication-port"), help: "Replication listening port for sync and ring.")
    var replicationPort: Int = 9080

    @Option(name: .customLong("session-key"), help: "Base64 256-bit key sealing client cookies (or env CONCORD_SESSION_KEY); all nodes must share it.")
    var sessionKey: String?

    @Option(
        name: .customLong("admin-token"),
        help: """
            sync and ring: the token POST /admin/peers/add and /admin/peers/remove must carry (Authorization: Bearer \
            TOKEN), at least 16 characters, or env CONCORD_ADMIN_TOKEN. Without one, runtime peer changes are refused \
            (403): a peer added there receives every session.
            """)
    var adminToken: String?

    @Option(
        name: .customLong("replication-secret"),
        help: """
            sync and ring: a secret every node shares (at least 16 characters), or env CONCORD_REPLICATION_SECRET: \
            each replication connection then proves it knows it, and callers that cannot are cut off. Without one, \
            keep the replication port on a private network.
            """)
    var replicationSecret: String?

    @Option(
        name: .customLong("shutdown-delay"),
        help: """
            On SIGTERM or SIGINT, keep serving but answer /ready with 503 for this many seconds, then shut down: a \
            proxy's health check moves new requests away first (set it above the check's interval × fall). A \
            second signal stops at once. 0: shut down at once. At most 600.
            """)
    var shutdownDelay: Double = 0

    @Option(
        name: .customLong("quiesce-grace"),
        help: """
            On shutdown, how many seconds a connection without a request in progress stays open for a request \
            already on its way (answered, then the connection closes) instead of being cut off. 0: close them at \
            once, as Hummingbird does alone. At most 60.
            """)
    var quiesceGrace: Double = 0.5

    @Option(
        name: .customLong("store-read-wait"),
        help: """
            store strategies: how many seconds a session read may wait out an unavailable store (retried every 50 ms) \
            before the request gets 503, so a short outage such as a Redis failover costs latency instead of errors. \
            A write waits the same way only when the store knows it never reached the backend (a refused connection, \
            a lock not granted); one that may have been applied gets 503 at once. 0: 503 at once. At most 60.
            """)
    var storeReadWait: Double = 0

    @Flag(name: .customLong("secure-cookies"), help: "Mark the session cookie and concord_user Secure (sent only over HTTPS): for clients that come through a TLS proxy such as concord proxy --tls-certificate.")
    var secureCookies = false

    @Flag(name: .customLong("compress-cookies"), help: "client: compress the session before sealing it into the cookie when that makes it smaller (more fits under browsers' 4096-byte cookie limit).")
    var compressCookies = false

    @Flag(help: "Run the app's tasks on SwiftNIO's event loops (NIO as Swift's global executor, as Vapor's app template does): with a redis:// store a request's Redis commands then stay on its loop, with no thread hand-off.")
    var nioGlobalExecutor = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (standard output).")
    var logLevel: String = "info"

    @Flag(name: .customLong("list-strategies"), help: "Print the strategies this build can run, one per line, and exit.")
    var listStrategies = false

    /// Checked when the command line is parsed, so that a bad flag prints this command's usage, not `concord`'s.
    func validate() throws {
        let configuration = try makeConfiguration()
        do { try AppSessionBackend.check(configuration) } catch let error as AppError { throw ValidationError("\(error)") }
    }

    func makeConfiguration() throws -> ConcordAppConfiguration {
        guard let strategy = ConcordAppConfiguration.Strategy(rawValue: strategy) else {
            throw ValidationError(
                "--strategy: unknown '\(self.strategy)'; expected \(ConcordAppConfiguration.Strategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (0...65535).contains(port), (0...65535).contains(replicationPort) else { throw ValidationError("ports must be 0...65535") }
        if (strategy == .sync || strategy == .ring) && port == replicationPort && port != 0 {
            throw ValidationError("--port and --replication-port are both \(port): the HTTP and replication listeners need a port each")
        }
        _ = try CommandLogging.level(parsing: logLevel)
        guard (0...600).contains(shutdownDelay) else { throw ValidationError("--shutdown-delay must be 0...600 seconds, got \(shutdownDelay)") }
        guard (0...60).contains(quiesceGrace) else { throw ValidationError("--quiesce-grace must be 0...60 seconds, got \(quiesceGrace)") }
        guard (0...60).contains(storeReadWait) else { throw ValidationError("--store-read-wait must be 0...60 seconds, got \(storeReadWait)") }
        guard !nodeID.isEmpty, nodeID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ValidationError("--node-id must be printable ASCII without spaces")
        }
        let adminToken = adminToken ?? ProcessInfo.processInfo.environment["CONCORD_ADMIN_TOKEN"]
        if let adminToken, adminToken.count < 16 || !adminToken.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            throw ValidationError("--admin-token (or CONCORD_ADMIN_TOKEN) must be at least 16 printable characters without spaces")
        }
        let replicationSecret = replicationSecret ?? ProcessInfo.processInfo.environment["CONCORD_REPLICATION_SECRET"]
        if let replicationSecret, replicationSecret.utf8.count < 16 {
            throw ValidationError("--replication-secret (or CONCORD_REPLICATION_SECRET) must be at least 16 characters")
        }
        return ConcordAppConfiguration(
            nodeID: nodeID, host: host, port: port, strategy: strategy, storeURL: storeURL,
            peers: peers.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? [],
            replicationPort: replicationPort,
            sessionKey: sessionKey ?? ProcessInfo.processInfo.environment["CONCORD_SESSION_KEY"],
            quiesceGrace: .seconds(quiesceGrace), secureCookies: secureCookies, storeReadWait: .seconds(storeReadWait),
            adminToken: adminToken, compressCookies: compressCookies, replicationSecret: replicationSecret)
    }

    /// `--store`, or `CONCORD_STORE` when the flag is not given (the lab passes its store URL that way: a password
    /// in a command line is readable by every user of the machine through `ps`).
    var storeURL: String {
        store != Self.defaultStore ? store : (ProcessInfo.processInfo.environment["CONCORD_STORE"] ?? store)
    }

    /// The flags given that this strategy does not use: warned about, not refused, so one command line can start
    /// every strategy (the browser test's does).
    func flagsWithoutEffect(_ strategy: ConcordAppConfiguration.Strategy) -> [String] {
        let usesStore = strategy == .store || strategy == .storeNearCache
        let replicates = strategy == .sync || strategy == .ring
        var flags: [String] = []
        if !usesStore && store != Self.defaultStore { flags.append("--store") }
        if !usesStore && storeReadWait > 0 { flags.append("--store-read-wait") }
        if !replicates && peers != nil { flags.append("--peers") }
        if !replicates && adminToken != nil { flags.append("--admin-token") }
        if !replicates && replicationSecret != nil { flags.append("--replication-secret") }
        if strategy != .client && sessionKey != nil { flags.append("--session-key") }
        if strategy != .client && compressCookies { flags.append("--compress-cookies") }
        return flags
    }

    func run() async throws {
        if listStrategies {
            for strategy in AppSessionBackend.availableStrategies { print(strategy.rawValue) }
            return
        }
        let configuration = try makeConfiguration()
        CommandLogging.bootstrap(level: try CommandLogging.level(parsing: logLevel), to: .standardOutput)
        if nioGlobalExecutor { try NIOGlobalExecutor.install() }
        OpenFileLimit.raise()  // a keep-alive connection per client, plus the store's and peers' connections
        var logger = Logger(label: "concord.app")
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        if nioGlobalExecutor { logger.info("tasks run on SwiftNIO's event loops (--nio-global-executor)") }
        for flag in flagsWithoutEffect(configuration.strategy) {
            logger.warning("\(flag) has no effect with --strategy \(configuration.strategy.rawValue)")
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var extra: [any Service] = []
        if let parent = ProcessInfo.processInfo.environment["CONCORD_PARENT_PID"].flatMap(Int32.init) {
            extra.append(ParentWatchService(parentPID: parent))
        }
        let delay = shutdownDelay > 0 ? await ShutdownDelayService(delay: .seconds(shutdownDelay), logger: logger) : nil
        let app = try ConcordAppServer.makeApplication(
            configuration: configuration, logger: logger, extraServices: extra, metricsText: { registry.emitToString() },
            isShuttingDown: { delay?.isDraining ?? false })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app)]
        if let delay { services.append(.init(service: delay, successTerminationBehavior: .gracefullyShutdownGroup)) }
        // What `app.runService()` does, except that a delay service traps SIGTERM/SIGINT itself and ends the group
        // gracefully once the delay is over.
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: delay == nil ? [.sigterm, .sigint] : [], logger: logger))
        do {
            try await group.run()
            logger.notice("concord app stopped")
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES {
            // NIO's bind error names neither the address nor which of the app's listeners failed.
            var addresses = "\(configuration.host):\(configuration.port) (HTTP)"
            var reason = String(cString: strerror(error.errnoCode)).lowercased()
            if configuration.strategy == .sync || configuration.strategy == .ring {
                addresses += " or \(configuration.host):\(configuration.replicationPort) (replication)"
                reason += " (a log line above names the replication listener if it was that one)"
            }
            throw AppError.cannotListen(addresses: addresses, reason: reason)
        }
    }
}
