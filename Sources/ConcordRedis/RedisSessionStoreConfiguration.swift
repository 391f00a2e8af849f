import ConcordSessions
/// How ``RedisSessionStore`` keeps sessions in Redis.
///
/// Defaults:
/// - `keyPrefix`: `"concord:"`; a session lives at `concord:session:{<id>}`, a user's index at
///   `concord:user:{<userID>}` (the braces are Redis Cluster hash tags).
/// - `maximumPayloadSize`: 1 MiB; larger saves throw `SessionStoreError.tooLarge` before reaching Redis.
/// - `outageSummaryInterval`: 10 s; while Redis is unreachable the store logs one warning when it becomes
///   unreachable, then at most one summary line ("N store operations failed in the last 10 s") per interval.
/// - `outageRecoveryQuietPeriod`: 1 s; the "reachable again" notice comes with the first success once no request
///   has failed for this long (so a partial outage does not flip the state on every request).
/// - `client`: ``RedisClientConfiguration`` defaults (2 s connect and command timeouts, 4 connections per node).
public struct RedisSessionStoreConfiguration: Sendable {
    public var client: RedisClientConfiguration
    public var keyPrefix: String
    public var maximumPayloadSize: Int
    public var outageSummaryInterval: Duration
    public var outageRecoveryQuietPeriod: Duration

    public init(
        client: RedisClientConfiguration, keyPrefix: String = "concord:", maximumPayloadSize: Int = 1 << 20,
        outageSummaryInterval: Duration = .seconds(10), outageRecoveryQuietPeriod: Duration = .seconds(1)
    ) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.maximumPayloadSize = maximumPayloadSize
        self.outageSummaryInterval = outageSummaryInterval
        self.outageRecoveryQuietPeriod = outageRecoveryQuietPeriod
    }

    /// From `redis://[:password@]host:port/db`; several URLs are the seeds of a Redis Cluster.
    public init(urls: [String], keyPrefix: String = "concord:", maximumPayloadSize: Int = 1 << 20) throws(RedisClientError) {
        self.init(client: try RedisClientConfiguration(urls: urls), keyPrefix: keyPrefix, maximumPayloadSize: maximumPayloadSize)
    }

    /// From one store URL as `concord app --store` takes it: a server, a `redis-sentinel://` URL, or a cluster's
    /// seeds separated by commas (``StoreURL/redisURLs(_:)``).
    public init(storeURL: String) throws(RedisClientError) {
        try self.init(urls: StoreURL.redisURLs(storeURL))
    }
}
