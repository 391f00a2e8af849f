import ConcordSessions
import Logging
import ServiceLifecycle

/// Turns `--strategy` (and the store URL, peers, key) into the session library's configuration, plus whatever
/// must run beside the HTTP server (store connections, replication) and the readiness it reports.
public struct AppSessionBackend: Sendable {
    public var sessions: ConcordSessionConfiguration
    /// Services to run in the app's service group.
    public var services: [any Service]
    /// Whether the node can serve sessions yet (a replicating node first pulls its peers' state).
    public var isReady: @Sendable () -> Bool

    /// The strategies this build of the app can run (the others need modules not built in yet).
    public static var availableStrategies: [ConcordAppConfiguration.Strategy] { [.local, .client] }

    public static func make(configuration: ConcordAppConfiguration, logger: Logger) throws -> AppSessionBackend {
        switch configuration.strategy {
        case .local:
            return AppSessionBackend(sessions: ConcordSessionConfiguration(strategy: .local()), services: [], isReady: { true })
        case .client:
            let keyRing: SessionKeyRing
            if let text = configuration.sessionKey {
                guard let key = SessionKeyRing.Key(id: 1, base64: text) else {
                    throw AppError.invalidConfiguration("the session key must be 32 bytes in base64")
                }
                keyRing = SessionKeyRing(current: key)
            } else {
                logger.warning("no session key given (--session-key or CONCORD_SESSION_KEY): using a random one; client sessions will not survive a restart or open on another node")
                keyRing = .random()
            }
            return AppSessionBackend(sessions: ConcordSessionConfiguration(strategy: .client(keyRing)), services: [], isReady: { true })
        case .sync, .ring, .store, .storeNearCache:
            throw AppError.invalidConfiguration(
                "strategy \(configuration.strategy.rawValue) is not available in this build; available: "
                    + availableStrategies.map(\.rawValue).joined(separator: ", "))
        }
    }
}
