import ConcordHummingbird
import ConcordNetworking
import Hummingbird
import Logging
import Metrics
import NIOCore
import ServiceLifecycle

extension ConcordAppServer {
    /// The whole app: router, session backend and its services, listening on the configured address.
    /// - Parameters:
    ///   - extraServices: more services to run beside it (e.g. ``ParentWatchService``).
    ///   - isShuttingDown: while true, `/ready` answers 503 (``ShutdownDelayService/isDraining``).
    public static func makeApplication(
        configuration: ConcordAppConfiguration,
        logger: Logger,
        extraServices: [any Service] = [],
        metricsText: @escaping @Sendable () -> String = { "" },
        isShuttingDown: @escaping @Sendable () -> Bool = { false }
    ) throws -> some ApplicationProtocol {
        let backend = try AppSessionBackend.make(configuration: configuration, logger: logger)
        let router = try makeRouter(
            configuration: configuration, sessions: backend.sessions, isReady: { backend.isReady() && !isShuttingDown() }, isStopping: isShuttingDown,
            metricsText: { metricsText() + backend.metricsText() }, changePeers: backend.changePeers)
        let node = configuration.nodeID
        let strategy = configuration.strategy.rawValue
        // A zero grace is Hummingbird's own behaviour: no handler at all.
        let grace = TimeAmount(configuration.quiesceGrace)
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: grace > .zero ? [QuiesceGraceHandler(grace: grace)] : [])),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "concord-app"),
            services: backend.services + extraServices,
            onServerRunning: { channel in
                // Out of descriptors, NIO's own accept backoff (behind this handler) keeps the listener in epoll and
                // the app spun at 100 % CPU; this one takes it out for a moment (``AcceptPauseHandler``).
                let alarm = LocalResourceAlarm(
                    counter: Counter(label: "concord_app_local_resource_failures_total", dimensions: [("node", node)]), logger: logger)
                do {
                    try await channel.eventLoop.submit {
                        try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(alarm: alarm), position: .first)
                    }.get()
                } catch {
                    // Only if the listener closed already (shutdown during start): nothing to protect then.
                    logger.warning("listener runs without the pause on descriptor exhaustion: \(error)")
                }
                if let checkStore = backend.checkStore {
                    Task {
                        if let error = await checkStore() {
                            logger.warning("the session store does not answer at start; session requests get 503 until it does", metadata: ["error": "\(error)"])
                        }
                    }
                }
                logger.info(
                    "concord app listening",
                    metadata: ["node": "\(node)", "strategy": "\(strategy)", "address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
    }
}
