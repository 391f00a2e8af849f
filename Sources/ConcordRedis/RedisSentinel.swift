/// Redis Sentinel: a primary with replicas, watched by sentinels that promote a replica when the primary fails.
/// The client asks the sentinels where the primary is whenever it opens a connection, so after a failover its
/// reconnects reach the new primary. In a URL:
/// `redis-sentinel://[[username]:password@]host[:port][,host[:port]…][/db][?sentinelPassword=SECRET]#masterName`
/// (sentinel port 26379 by default; the credentials and the database are the primary's; the sentinels are asked
/// without them, or with `sentinelPassword` when they have a `requirepass` of their own).
public struct RedisSentinel: Sendable, Hashable {
    /// The name the sentinels monitor the primary under (`sentinel monitor NAME …`).
    public var masterName: String
    /// Sentinels to ask, in order (any one that answers will do).
    public var sentinels: [RedisEndpoint]

    public init(masterName: String, sentinels: [RedisEndpoint]) {
        self.masterName = masterName
        self.sentinels = sentinels
    }

    /// The default port of a sentinel.
    public static let defaultPort = 26379

    /// Parses a `redis-sentinel://` URL into the sentinels and the primary's settings (an endpoint whose host is the
    /// master name: the sentinels give the address).
    static func parse(url: String) throws(RedisClientError) -> (sentinel: RedisSentinel, primary: RedisEndpoint) {
        let scheme = "redis-sentinel://"
        guard url.hasPrefix(scheme), let hash = url.lastIndex(of: "#") else {
            throw .invalidConfiguration("a redis-sentinel:// URL ends with #MASTER_NAME (the name the sentinels monitor)")
        }
        let masterName = String(url[url.index(after: hash)...])
        guard !masterName.isEmpty else { throw .invalidConfiguration("redis-sentinel:// URL without a master name after #") }
        var (rest, query) = try RedisEndpoint.splitQuery(
            url[url.index(url.startIndex, offsetBy: scheme.count)..<hash], url: url, known: ["sentinelPassword"])
        let sentinelPassword = query?["sentinelPassword"]
        // The user info and the database apply to the primary; parse them once through the redis:// form.
        var userInfo = ""
        if let at = rest.lastIndex(of: "@") {
            userInfo = String(rest[...at])
            rest = rest[rest.index(after: at)...]
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        var sentinels: [RedisEndpoint] = []
        for address in rest.split(separator: ",", omittingEmptySubsequences: false) {
            var endpoint = try RedisEndpoint(url: "redis://\(address)")
            if !address.contains(":") || address.hasSuffix("]") { endpoint.port = defaultPort }
            endpoint.password = sentinelPassword
            sentinels.append(endpoint)
        }
        var primary = try RedisEndpoint(url: "redis://\(userInfo)primary\(path)")
        primary.host = masterName
        return (RedisSentinel(masterName: masterName, sentinels: sentinels), primary)
    }
}
