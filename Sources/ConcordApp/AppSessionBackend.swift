import ConcordReplication
import ConcordSessions
import Logging
import ServiceLifecycle

/// Turns `--strategy` (and the store URL, peers, key) into the session library's configuration, plus whatever
/// must run beside the HTTP server (replication, store connections), the readiness it reports, its metrics and
/// its runtime peer changes.
public struct AppSessionBackend: Sendable {
    public var sessions: ConcordSessionConfiguration
    /// Services to run in the app's service group.
    public var services: [any Service]
    /// Whether the node can serve sessions yet (a replicating node first pulls its peers' state).
    public var isReady: @Sendable () -> Bool
    /// Extra Prometheus text lines (replication bytes) appended to `/metrics`.
    public var metricsText: @Sendable () -> String
    /// Adds or removes a replication peer at runtime (`nil` when the strategy does not replicate).
    public var changePeers: (@Sendable (_ add: Bool, _ peer: ReplicationPeer) -> Void)?
    /// Asks the store once, when the app starts listening: the error if it does not answer (`nil` when it does, or
    /// the strategy has no store). The app still starts — the store may come later — but says so at once instead
    /// of at the first session request.
    public var checkStore: (@Sendable () async -> String?)?

    init(
        sessions: ConcordSessionConfiguration, services: [any Service] = [], isReady: @escaping @Sendable () -> Bool = { true },
        metricsText: @escaping @Sendable () -> String = { "" },
        changePeers: (@Sendable (_ add: Bool, _ peer: ReplicationPeer) -> Void)? = nil
    ) {
        self.sessions = sessions
        self.services = services
        self.isReady = isReady
        self.metricsText = metricsText
        self.changePeers = changePeers
    }

    /// `--session-key`: 32 bytes in base64; the error says what is wrong with it (not base64, or how many bytes).
    private static func sessionKey(_ text: String) throws -> SessionKeyRing.Key {
        do {
            return try SessionKeyRing.Key(id: 1, parsing: text)
        } catch {
            throw AppError.invalidConfiguration("the session key must be 32 bytes in base64: \(error)")
        }
    }

    /// What ``make(configuration:logger:)`` would refuse in `configuration` — a session key that is not one, a bad
    /// peer list, a store URL no store takes — found without building anything, so the command line can say so
    /// as a usage error (exit 64) instead of at start (exit 1).
    public static func check(_ configuration: ConcordAppConfiguration) throws {
        switch configuration.strategy {
        case .client:
            if let text = configuration.sessionKey { _ = try sessionKey(text) }
        case .sync, .ring:
            _ = try parsePeers(configuration.peers, ownID: configuration.nodeID)
        case .store, .storeNearCache:
            try AppSessionStoreFactory.check(url: configuration.storeURL)
        case .local:
            break
        }
    }

    /// The strategies this build of the app can run (the others need modules not built in yet).
    public static var availableStrategies: [ConcordAppConfiguration.Strategy] { ConcordAppConfiguration.Strategy.allCases }

    public static func make(configuration: ConcordAppConfiguration, logger: Logger) throws -> AppSessionBackend {
        switch configuration.strategy {
        case .local:
            return AppSessionBackend(sessions: ConcordSessionConfiguration(strategy: .local()))
        case .client:
            let keyRing: SessionKeyRing
            if let text = configuration.sessionKey {
                keyRing = SessionKeyRing(current: try sessionKey(text))
            } else {
                logger.warning("no session key given (--session-key or CONCORD_SESSION_KEY): using a random one; client sessions will not survive a restart or open on another node")
                keyRing = .random()
            }
            let sealer = SessionSealerConfiguration(compression: configuration.compressCookies)
            return AppSessionBackend(sessions: ConcordSessionConfiguration(strategy: .client(keyRing, sealer: sealer)))
        case .sync, .ring:
            var replication = ReplicationConfiguration(
                nodeID: configuration.nodeID, host: configuration.host, port: configuration.replicationPort,
                peers: try parsePeers(configuration.peers, ownID: configuration.nodeID))
            if let secret = configuration.replicationSecret {
                replication.sharedSecret = Array(secret.utf8)
            } else {
                logger.notice("the replication port serves any caller that says hello: give every node the same --replication-secret (or CONCORD_REPLICATION_SECRET) unless that port is on a private network")
            }
            let store: any ReplicatedSessionStore =
                configuration.strategy == .sync
                ? SyncSessionStore(configuration: replication, logger: logger)
                : RingSessionStore(configuration: RingSessionStoreConfiguration(replication: replication), logger: logger)
            return AppSessionBackend(
                sessions: ConcordSessionConfiguration(strategy: .store(store)),
                services: [store],
                isReady: { store.isReady },
                metricsText: {
                    "# TYPE concord_app_intranet_bytes_total counter\n"
                        + "concord_app_intranet_bytes_total{kind=\"replication\"} \(store.statistics.bytesSent)\n"
                },
                changePeers: { add, peer in
                    if add { store.addPeer(peer) } else { store.removePeer(id: peer.id) }
                })
        case .store, .storeNearCache:
            // The cache sits in front of the metered store, so only the round trips it does not save are counted;
            // reads that wait out an outage are retried below it, so a wait is not a cache miss.
            let made = try AppSessionStoreFactory.make(url: configuration.storeURL, logger: logger)
            var store = made.store
            var metricsText: @Sendable () -> String = { "" }
            if configuration.storeReadWait > .zero {
                let retrying = ReadRetryingSessionStore(backing: store, budget: configuration.storeReadWait)
                store = retrying
                metricsText = { Self.metricsText(retrying.statistics) }
            }
            if configuration.strategy == .storeNearCache {
                let cache = NearCacheSessionStore(backing: store)
                store = cache
                metricsText = { [retries = metricsText] in retries() + Self.metricsText(cache.statistics) }
            }
            var backend = AppSessionBackend(sessions: ConcordSessionConfiguration(strategy: .store(store)), services: made.services, metricsText: metricsText)
            backend.checkStore = { [store = made.store] in await store.checkAnswers().map { "\($0)" } }
            return backend
        }
    }

    /// `concord_app_near_cache_loads_total{outcome="hit|miss|stale"}`, `concord_app_near_cache_store_round_trips_total`,
    /// `concord_app_near_cache_payload_bytes_saved_total`, `concord_app_near_cache_evictions_total` and the gauge
    /// `concord_app_near_cache_entries`: what the near cache saved (`store+near-cache`).
    static func metricsText(_ statistics: NearCacheSessionStoreStatistics) -> String {
        "# TYPE concord_app_near_cache_loads_total counter\n"
            + "concord_app_near_cache_loads_total{outcome=\"hit\"} \(statistics.hits)\n"
            + "concord_app_near_cache_loads_total{outcome=\"miss\"} \(statistics.misses)\n"
            + "concord_app_near_cache_loads_total{outcome=\"stale\"} \(statistics.staleEntries)\n"
            + "# TYPE concord_app_near_cache_store_round_trips_total counter\n"
            + "concord_app_near_cache_store_round_trips_total \(statistics.storeRoundTrips)\n"
            + "# TYPE concord_app_near_cache_payload_bytes_saved_total counter\n"
            + "concord_app_near_cache_payload_bytes_saved_total \(statistics.payloadBytesSaved)\n"
            + "# TYPE concord_app_near_cache_evictions_total counter\n"
            + "concord_app_near_cache_evictions_total \(statistics.evictions)\n"
            + "# TYPE concord_app_near_cache_entries gauge\n"
            + "concord_app_near_cache_entries \(statistics.entries)\n"
    }

    /// `concord_app_store_read_retries_total{outcome}` and `concord_app_store_write_retries_total{outcome}`: reads
    /// (and writes that never left the app) that waited out an unavailable store, by how they ended.
    static func metricsText(_ statistics: ReadRetryingSessionStoreStatistics) -> String {
        func family(_ name: String, _ retried: Int, _ recovered: Int, _ exhausted: Int) -> String {
            "# TYPE \(name) counter\n"
                + "\(name){outcome=\"retried\"} \(retried)\n"
                + "\(name){outcome=\"recovered\"} \(recovered)\n"
                + "\(name){outcome=\"exhausted\"} \(exhausted)\n"
        }
        return family("concord_app_store_read_retries_total", statistics.retriedReads, statistics.recoveredReads, statistics.exhaustedReads)
            + family("concord_app_store_write_retries_total", statistics.retriedWrites, statistics.recoveredWrites, statistics.exhaustedWrites)
    }

    /// `--peers`: each NODE-ID@HOST:PORT, none of them this node and no id twice (a duplicate id made one of two
    /// nodes unreachable, this node's own id made it replicate to itself; both were accepted without a word).
    public static func parsePeers(_ texts: [String], ownID: String) throws -> [ReplicationPeer] {
        var seen = Set<String>()
        return try texts.map { text in
            let peer = try parsePeer(text)
            guard peer.id != ownID else {
                throw AppError.invalidConfiguration("peer '\(text)' has this node's own id \(ownID); list the other nodes")
            }
            guard seen.insert(peer.id).inserted else {
                throw AppError.invalidConfiguration("peer id \(peer.id) is listed twice in --peers; every node needs its own id")
            }
            return peer
        }
    }

    /// A peer written `NODE-ID@HOST:PORT`.
    public static func parsePeer(_ text: String) throws -> ReplicationPeer {
        guard let at = text.lastIndex(of: "@"), let colon = text.lastIndex(of: ":"), at < colon,
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port), at > text.startIndex
        else {
            throw AppError.invalidConfiguration("peer '\(text)' is not NODE-ID@HOST:PORT")
        }
        return ReplicationPeer(id: String(text[..<at]), host: String(text[text.index(after: at)..<colon]), port: port)
    }
}
