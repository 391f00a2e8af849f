/// Which store a store URL names, told by its scheme alone — the one list behind `concord app --store`,
/// `concord lab --store` and `concord bench stores --url`; each store reads the rest of the URL itself.
public enum StoreURL: Sendable, Equatable {
    /// `sqlite:PATH`: the file's path (may be empty; the SQLite store decides what that means).
    case sqlite(path: String)
    /// `redis://`, `rediss://` (TLS), `redis-sentinel://`, `rediss-sentinel://`.
    case redis
    /// `postgres://` or `postgresql://`.
    case postgres

    /// The forms, for messages.
    public static let forms = [
        "sqlite:PATH", "redis://HOST:PORT", "rediss://HOST:PORT (TLS)", "redis://HOST:PORT,redis://HOST:PORT… (Redis Cluster seeds)",
        "redis-sentinel://HOST:PORT[,HOST:PORT…]#MASTER (rediss-sentinel:// for TLS)", "postgres://USER@HOST:PORT/DB",
    ]

    private static let redisSchemes = ["redis://", "rediss://", "redis-sentinel://", "rediss-sentinel://"]
    private static let postgresSchemes = ["postgres://", "postgresql://"]

    /// `nil` when `url` is none of the forms.
    public init?(_ url: String) {
        if url.hasPrefix("sqlite:") {
            self = .sqlite(path: String(url.dropFirst("sqlite:".count)))
        } else if Self.redisSchemes.contains(where: url.hasPrefix) {
            self = .redis
        } else if Self.postgresSchemes.contains(where: url.hasPrefix) {
            self = .postgres
        } else {
            return nil
        }
    }

    /// The URLs in a `redis://` or `rediss://` store URL: several, comma-separated (`redis://10.0.0.1:7000,redis://
    /// 10.0.0.2:7000`), are Redis Cluster seeds; a sentinel URL's commas separate its sentinels and stay.
    public static func redisURLs(_ url: String) -> [String] {
        var urls: [String] = []
        var rest = Substring(url)
        while let comma = rest.indices.first(where: { index in
            rest[index] == "," && ["redis://", "rediss://"].contains { rest[rest.index(after: index)...].hasPrefix($0) }
        }) {
            urls.append(String(rest[..<comma]))
            rest = rest[rest.index(after: comma)...]
        }
        urls.append(String(rest))
        return urls
    }

    /// `url` fit for a message or a log line: the user information of every `scheme://` in it (a list of cluster
    /// seeds has several) and the value of every query parameter whose name says password, secret or token
    /// become `***`.
    public static func redacted(_ url: String) -> String {
        var out = ""
        var rest = Substring(url)
        while let scheme = rest.range(of: "://") {
            out += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            // Up to the last `@` before the next URL: a password may hold `/`, `?` or `#` unescaped (the parsers
            // take the last `@`), so the user information is not cut at the first of them.
            let next = rest.range(of: "://").map { rest[..<$0.lowerBound].lastIndex(of: ",") ?? $0.lowerBound } ?? rest.endIndex
            if let at = rest[..<next].lastIndex(of: "@") {
                // A PostgreSQL user name is no secret and tells which role failed; Redis URLs may carry a password
                // alone where the user goes, so all of theirs is hidden.
                let userInfo = rest[..<at]
                if postgresSchemes.contains(where: { out.hasSuffix($0) }) {
                    out += userInfo.firstIndex(of: ":").map { userInfo[..<$0] + ":***" } ?? userInfo
                } else {
                    out += "***"
                }
                rest = rest[at...]
            }
        }
        out += rest
        guard let question = out.firstIndex(of: "?") else { return out }
        let fragment = out[question...].firstIndex(of: "#") ?? out.endIndex
        let pairs = out[out.index(after: question)..<fragment].split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            let name = pair.prefix { $0 != "=" }.lowercased()
            guard pair.contains("="), ["password", "secret", "token"].contains(where: name.contains) else { return String(pair) }
            return pair.prefix { $0 != "=" } + "=***"
        }
        return out[...question] + pairs.joined(separator: "&") + out[fragment...]
    }
}
