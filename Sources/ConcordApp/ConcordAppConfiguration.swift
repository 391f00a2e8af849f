/// Everything `concord app` needs: which node it is, where it listens, and how it keeps sessions.
public struct ConcordAppConfiguration: Sendable {
    /// Where sessions live (the app's code is the same for every one).
    public enum Strategy: String, Sendable, CaseIterable {
        /// This process's memory (breaks as soon as a user's requests reach another node).
        case local
        /// Replicated to every peer.
        case sync
        /// Sealed into the cookie.
        case client
        /// A shared backend store (`storeURL`).
        case store
        /// Replicated to the next k nodes on the proxy's hash ring.
        case ring
        /// A shared backend store with a version-checked in-process cache.
        case storeNearCache = "store+near-cache"
    }

    /// This node's name, sent as `X-Concord-Node` on every response. Default `node-1`.
    public var nodeID: String
    /// Listening address. Default 127.0.0.1.
    public var host: String
    /// Listening port. Default 8080.
    public var port: Int
    /// Default `local`.
    public var strategy: Strategy
    /// Store URL for `store` and `store+near-cache`: `sqlite:PATH` (default `sqlite:concord-sessions.sqlite`),
    /// `redis://HOST:PORT`, `postgres://USER@HOST:PORT/DB`.
    public var storeURL: String
    /// Replication peers for `sync` and `ring`, as `NODE-ID@HOST:PORT`.
    public var peers: [String]
    /// The replication listening port for `sync` and `ring`. Default 9080.
    public var replicationPort: Int
    /// The 256-bit key (base64) that seals `client` cookies; every node must share it. `nil`: a random key
    /// (sessions then survive neither a restart nor another node).
    public var sessionKey: String?
    /// The password every demo user logs in with. Default `concord`.
    public var password: String
    /// On a graceful shutdown, how long a connection without a request in progress stays open for a request
    /// already on its way (answered, then the connection closes; ``QuiesceGraceHandler``). Default 0.5 s.
    public var quiesceGrace: Duration
    /// Mark the session cookie and `concord_user` `Secure` (browsers send them only over HTTPS): for an app whose
    /// clients come through a TLS-terminating proxy (`concord proxy --tls-certificate …`). Default `false`, so
    /// plain-HTTP development works.
    public var secureCookies: Bool
    /// `store` strategies: how long a session read — or a write that never reached the backend — may wait out an
    /// unavailable store (``ReadRetryingSessionStore``) before the request is answered 503 — a Redis failover then
    /// costs latency instead of errors. Default 0 (503 at once).
    public var storeReadWait: Duration
    /// `sync` and `ring`: the token that `POST /admin/peers/add` and `/remove` must carry (`Authorization: Bearer
    /// TOKEN`). `nil` (the default): those requests are refused (403) — the app's port is the one a proxy
    /// forwards, and a peer added there receives every session.
    public var adminToken: String?
    /// `client`: compress session payloads before sealing when that makes the cookie smaller (a cart holds about
    /// twice as many items before the cookie reaches browsers' 4096-byte limit). Default `false`.
    public var compressCookies: Bool
    /// `sync` and `ring`: the secret every node shares, which each replication connection's hello must prove
    /// (``ReplicationConfiguration/sharedSecret``). `nil`: the replication port serves any caller.
    public var replicationSecret: String?

    public init(
        nodeID: String = "node-1",
        host: String = "127.0.0.1",
        port: Int = 8080,
        strategy: Strategy = .local,
        storeURL: String = "sqlite:concord-sessions.sqlite",
        peers: [String] = [],
        replicationPort: Int = 9080,
        sessionKey: String? = nil,
        password: String = "concord",
        quiesceGrace: Duration = .milliseconds(500),
        secureCookies: Bool = false,
        storeReadWait: Duration = .zero,
        adminToken: String? = nil,
        compressCookies: Bool = false,
        replicationSecret: String? = nil
    ) {
        self.nodeID = nodeID
        self.host = host
        self.port = port
        self.strategy = strategy
        self.storeURL = storeURL
        self.peers = peers
        self.replicationPort = replicationPort
        self.sessionKey = sessionKey
        self.password = password
        self.quiesceGrace = quiesceGrace
        self.secureCookies = secureCookies
        self.storeReadWait = storeReadWait
        self.adminToken = adminToken
        self.compressCookies = compressCookies
        self.replicationSecret = replicationSecret
    }
}
