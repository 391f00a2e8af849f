/// How a ``RedisClient`` connects: which servers, how many connections, and how long it waits.
///
/// Defaults:
/// - `cluster`: `nil` = automatic: one endpoint is a single server, several endpoints are Redis Cluster seeds.
/// - `sentinel`: `nil`; with sentinels, the primary they name is the single server (its credentials, database and
///   TLS from `endpoints[0]`, whose host and port are not used).
/// - `maximumConnectionsPerNode`: 4 pipelined connections per server (commands from many tasks share them).
/// - `connectTimeout`: 2 s for the TCP connect (the AUTH/SELECT handshake then has the command timeout).
/// - `commandTimeout`: 2 s from sending a command to its reply; on expiry the connection is closed (a late reply
///   would otherwise be matched to the wrong command) and pending commands fail.
/// - `reconnectBackoff`: 50 ms after the first failed reconnect, doubling up to `maximumReconnectBackoff` (2 s;
///   250 ms with sentinels, where an outage usually ends with a promotion the pool should find at once);
///   while backing off, commands fail at once with a typed error instead of queueing.
/// - `maximumRedirections`: 5 MOVED/ASK hops per command.
/// - `sentinelSubscription`: with sentinels, `true`: the client subscribes to their `+switch-master` announcements
///   and leaves a primary they replace at once (turn it off for sentinels that cannot be subscribed to).
/// - `sentinelPollInterval`: with sentinels, 1 s between two questions "which server is the primary?" — the
///   fallback for the subscription.
/// - `protocolVersion`: 2 (RESP2; 3 sends `HELLO 3` and speaks RESP3).
/// - `decoder`: ``RESPDecoderConfiguration`` defaults.
public struct RedisClientConfiguration: Sendable {
    public var endpoints: [RedisEndpoint]
    public var cluster: Bool?
    public var sentinel: RedisSentinel?
    public var maximumConnectionsPerNode: Int
    public var connectTimeout: Duration
    public var commandTimeout: Duration
    public var reconnectBackoff: Duration
    public var maximumReconnectBackoff: Duration
    public var maximumRedirections: Int
    public var protocolVersion: Int
    public var decoder: RESPDecoderConfiguration
    public var sentinelSubscription = true
    public var sentinelPollInterval: Duration = .seconds(1)

    public init(
        endpoints: [RedisEndpoint],
        cluster: Bool? = nil,
        sentinel: RedisSentinel? = nil,
        maximumConnectionsPerNode: Int = 4,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        reconnectBackoff: Duration = .milliseconds(50),
        maximumReconnectBackoff: Duration? = nil,
        maximumRedirections: Int = 5,
        protocolVersion: Int = 2,
        decoder: RESPDecoderConfiguration = RESPDecoderConfiguration()
    ) {
        self.endpoints = endpoints
        self.cluster = cluster
        self.sentinel = sentinel
        self.maximumConnectionsPerNode = maximumConnectionsPerNode
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnectBackoff = reconnectBackoff
        self.maximumReconnectBackoff = maximumReconnectBackoff ?? (sentinel == nil ? .seconds(2) : .milliseconds(250))
        self.maximumRedirections = maximumRedirections
        self.protocolVersion = protocolVersion
        self.decoder = decoder
    }

    /// From URLs such as `redis://:secret@127.0.0.1:6379/0`; several URLs mean Redis Cluster seeds; one
    /// `redis-sentinel://h1:26379,h2:26379/0#mymaster` means the primary those sentinels name.
    public init(urls: [String]) throws(RedisClientError) {
        guard !urls.isEmpty else { throw .invalidConfiguration("no Redis URL given") }
        if let url = urls.first(where: RedisSentinel.isSentinelURL) {
            guard urls.count == 1 else {
                throw .invalidConfiguration("a redis-sentinel:// URL lists all its sentinels itself; give it alone")
            }
            let (sentinel, primary) = try RedisSentinel.parse(url: url)
            self.init(endpoints: [primary], sentinel: sentinel)
            return
        }
        var endpoints: [RedisEndpoint] = []
        for url in urls { endpoints.append(try RedisEndpoint(url: url)) }
        self.init(endpoints: endpoints)
    }

    /// Whether the client speaks Redis Cluster (explicit `cluster`, or several endpoints).
    public var isCluster: Bool { sentinel == nil && (cluster ?? (endpoints.count > 1)) }
}
