/// How ``RedisSessionStore`` keeps sessions in Redis.
///
/// Defaults:
/// - `keyPrefix`: `"concord:"`; a session lives at `concord:session:{<id>}`, a user's index at
///   `concord:user:{<userID>}` (the braces are Redis Cluster hash tags).
/// - `maximumPayloadSize`: 1 MiB; larger saves throw `SessionStoreError.tooLarge` before reaching Redis.
/// - `client`: ``RedisClientConfiguration`` defaults (2 s connect and command timeouts, 4 connections per node).
public struct RedisSessionStoreConfiguration: Sendable {
    public var client: RedisClientConfiguration
    public var keyPrefix: String
    public var maximumPayloadSize: Int

    public init(client: RedisClientConfiguration, keyPrefix: String = "concord:", maximumPayloadSize: Int = 1 << 20) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.maximumPayloadSize = maximumPayloadSize
    }

    /// From `redis://[:password@]host:port/db`; several URLs are the seeds of a Redis Cluster.
    public init(urls: [String], keyPrefix: String = "concord:", maximumPayloadSize: Int = 1 << 20) throws(RedisClientError) {
        self.init(client: try RedisClientConfiguration(urls: urls), keyPrefix: keyPrefix, maximumPayloadSize: maximumPayloadSize)
    }
}
