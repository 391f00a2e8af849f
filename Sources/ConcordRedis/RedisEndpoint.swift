import ConcordSessions
/// One Redis server to connect to, usually parsed from a URL: `redis://[[username]:password@]host[:port][/db]`, or
/// `rediss://…` for TLS (``RedisTLS``; its settings as query parameters).
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    /// The logical database (`SELECT`); must be 0 for Redis Cluster.
    public var database: Int
    /// TLS settings; `nil` = plain TCP.
    public var tls: RedisTLS?

    public init(
        host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0,
        tls: RedisTLS? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Another node of the same deployment (a cluster node from the slot table or a redirection): the same
    /// credentials and TLS settings, database 0.
    func sibling(host: String, port: Int) -> RedisEndpoint {
        RedisEndpoint(host: host, port: port, username: username, password: password, database: 0, tls: tls)
    }

    /// Parses `redis://[[username]:password@]host[:port][/db]` (IPv6 hosts in brackets), or `rediss://` with the
    /// same parts and optional ``RedisTLS`` query parameters. Percent-escapes in the user info and the query are
    /// decoded.
    public init(url: String) throws(RedisClientError) {
        var rest: Substring
        var tls: RedisTLS?
        if url.hasPrefix("redis://") {
            rest = Substring(url.dropFirst("redis://".count))
        } else if url.hasPrefix("rediss://") {
            rest = Substring(url.dropFirst("rediss://".count))
            tls = RedisTLS()
        } else {
            throw .invalidConfiguration("\(Self.redacted(url)) does not start with redis:// or rediss://")
        }
        let query: [String: String]?
        (rest, query) = try Self.splitQuery(rest, url: url, known: RedisTLS.queryKeys)
        if let query {
            guard tls != nil else {
                throw .invalidConfiguration("\(Self.redacted(url)): query parameters are TLS settings and need rediss://")
            }
            tls = try RedisTLS(query: query)
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = Self.percentDecoded(userInfo[..<colon])
                username = user.isEmpty ? nil : user
                password = Self.percentDecoded(userInfo[userInfo.index(after: colon)...])
            } else {
                password = Self.percentDecoded(userInfo)
            }
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let number = Int(path), number >= 0 else {
                    throw .invalidConfiguration("database '\(path)' in \(Self.redacted(url)) is not a number")
                }
                database = number
            }
        }
        var host = String(rest)
        var port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw .invalidConfiguration("unterminated IPv6 address in \(Self.redacted(url))")
            }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let number = Int(after.dropFirst()) else {
                    throw .invalidConfiguration("port in \(Self.redacted(url)) is not a number")
                }
                port = number
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let number = Int(rest[rest.index(after: colon)...]) else {
                throw .invalidConfiguration("port in \(Self.redacted(url)) is not a number")
            }
            port = number
        }
        guard !host.isEmpty else { throw .invalidConfiguration("no host in \(Self.redacted(url))") }
        guard !host.contains(","), rest.hasPrefix("[") || !host.contains(":") else {
            throw .invalidConfiguration(
                "host '\(host)' in \(Self.redacted(url)) is not one host; Redis Cluster seeds are several URLs (redis://HOST:PORT,redis://HOST:PORT)")
        }
        guard (1...65535).contains(port) else { throw .invalidConfiguration("port \(port) out of range") }
        self.init(host: host, port: port, username: username, password: password, database: database, tls: tls)
    }

    /// `rest` (a URL after its scheme) up to its query, and the query's `key=value` pairs (joined by `&`,
    /// percent-decoded; only `known` keys, each once), `nil` when there is no query. The query starts at the first
    /// `?` after the user info: a password may hold one. For `redis(s)://` and `redis-sentinel://` URLs alike.
    static func splitQuery(_ rest: Substring, url: String, known: Set<String>) throws(RedisClientError)
        -> (Substring, [String: String]?)
    {
        let hostStart = rest.lastIndex(of: "@").map { rest.index(after: $0) } ?? rest.startIndex
        guard let question = rest[hostStart...].firstIndex(of: "?") else { return (rest, nil) }
        var pairs: [String: String] = [:]
        for item in rest[rest.index(after: question)...].split(separator: "&") {
            guard let equals = item.firstIndex(of: "=") else {
                throw .invalidConfiguration("\(redacted(url)): query item '\(item)' is not key=value")
            }
            let key = String(item[..<equals])
            guard known.contains(key) else {
                throw .invalidConfiguration(
                    "\(redacted(url)): unknown parameter '\(key)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            guard pairs.updateValue(percentDecoded(item[item.index(after: equals)...]), forKey: key) == nil else {
                throw .invalidConfiguration("\(redacted(url)): parameter '\(key)' given twice")
            }
        }
        return (rest[..<question], pairs)
    }

    /// `host:port` (with the database when not 0); never the password.
    public var description: String {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return database == 0 ? address : "\(address)/\(database)"
    }

    private static func redacted(_ url: String) -> String { StoreURL.redacted(url) }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
