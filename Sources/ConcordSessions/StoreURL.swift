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
        "sqlite:PATH", "redis://HOST:PORT", "rediss://HOST:PORT (TLS)",
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
}
