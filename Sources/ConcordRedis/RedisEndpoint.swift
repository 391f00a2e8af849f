/// One Redis server to connect to, usually parsed from a URL: `redis://[[username]:password@]host[:port][/db]`.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    /// The logical database (`SELECT`); must be 0 for Redis Cluster.
    public var database: Int

    public init(host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[username]:password@]host[:port][/db]` (IPv6 hosts in brackets). Percent-escapes in the
    /// user info are decoded.
    public init(url: String) throws(RedisClientError) {
        guard url.hasPrefix("redis://") else {
            throw .invalidConfiguration("\(Self.redacted(url)) does not start with redis://")
        }
        var rest = Substring(url.dropFirst("redis://".count))
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
        guard (1...65535).contains(port) else { throw .invalidConfiguration("port \(port) out of range") }
        self.init(host: host, port: port, username: username, password: password, database: database)
    }

    /// `host:port` (with the database when not 0); never the password.
    public var description: String {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return database == 0 ? address : "\(address)/\(database)"
    }

    private static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        return "redis://***" + url[at...]
    }

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
