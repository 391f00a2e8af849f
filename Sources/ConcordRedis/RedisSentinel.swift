/// Redis Sentinel: a primary with replicas, watched by sentinels that promote a replica when the primary fails.
/// The client asks the sentinels where the primary is whenever it opens a connection, so after a failover its
/// reconnects reach the new primary. In a URL:
/// `redis-sentinel://[[username]:password@]host[:port][,host[:port]…][/db][?sentinelPassword=SECRET]#masterName`
/// (sentinel port 26379 by default; the credentials and the database are the primary's; the sentinels are asked
/// without them, or with `sentinelPassword` when they have a `requirepass` of their own, and `sentinelUsername`
/// too for an ACL user of theirs).
/// `rediss-sentinel://…` speaks TLS to the sentinels and to the primary alike (sentinels with `tls-port` and
/// `tls-replication yes`, which then name the primary's TLS port), with the ``RedisTLS`` query parameters of
/// `rediss://` (`caFile`, `certificateChain`, `privateKey`, `serverName`, `verify`).
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

    /// The URL schemes of a sentinel deployment: plain, and TLS.
    static let schemes = ["redis-sentinel://", "rediss-sentinel://"]

    /// The query parameters for the sentinels' own credentials.
    private static let credentialKeys: Set<String> = ["sentinelUsername", "sentinelPassword"]

    /// Whether `url` names a sentinel deployment.
    public static func isSentinelURL(_ url: String) -> Bool { schemes.contains { url.hasPrefix($0) } }

    /// Parses a `redis-sentinel://` URL into the sentinels and the primary's settings (an endpoint whose host is the
    /// master name: the sentinels give the address).
    static func parse(url: String) throws(RedisClientError) -> (sentinel: RedisSentinel, primary: RedisEndpoint) {
        guard let scheme = schemes.first(where: { url.hasPrefix($0) }), let hash = url.lastIndex(of: "#") else {
            throw .invalidConfiguration("a redis-sentinel:// URL ends with #MASTER_NAME (the name the sentinels monitor)")
        }
        let masterName = String(url[url.index(after: hash)...])
        guard !masterName.isEmpty else { throw .invalidConfiguration("\(scheme) URL without a master name after #") }
        let isTLS = scheme == "rediss-sentinel://"
        var (rest, query) = try RedisEndpoint.splitQuery(
            url[url.index(url.startIndex, offsetBy: scheme.count)..<hash], url: url,
            known: isTLS ? RedisTLS.queryKeys.union(credentialKeys) : credentialKeys)
        let sentinelUsername = query?.removeValue(forKey: "sentinelUsername")
        let sentinelPassword = query?.removeValue(forKey: "sentinelPassword")
        if sentinelUsername != nil && sentinelPassword == nil {
            throw .invalidConfiguration("sentinelUsername needs a sentinelPassword")
        }
        let tls: RedisTLS? = isTLS ? try RedisTLS(query: query ?? [:]) : nil
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
            endpoint.username = sentinelUsername
            endpoint.password = sentinelPassword
            endpoint.tls = tls
            sentinels.append(endpoint)
        }
        var primary = try RedisEndpoint(url: "redis://\(userInfo)primary\(path)")
        primary.host = masterName
        primary.tls = tls
        return (RedisSentinel(masterName: masterName, sentinels: sentinels), primary)
    }
}
