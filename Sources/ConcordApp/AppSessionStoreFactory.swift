import ConcordPostgres
import ConcordRedis
import ConcordSQLite
import ConcordSessions
import Logging
import ServiceLifecycle

/// The shared store a `store` or `store+near-cache` node uses, from its URL.
enum AppSessionStoreFactory {
    /// URL forms this build understands.
    static let forms = [
        "sqlite:PATH", "redis://HOST:PORT", "rediss://HOST:PORT (TLS)", "redis-sentinel://HOST:PORT[,HOST:PORT…]#MASTER (rediss-sentinel:// for TLS)",
        "postgres://USER@HOST:PORT/DB",
    ]

    /// The store for `url`, metered (its bytes count as intranet traffic), and the services it needs running.
    static func make(url: String, logger: Logger) throws -> (store: any SessionStore, services: [any Service]) {
        do {
            if url.hasPrefix("sqlite:") {
                let store = SQLiteSessionStore(configuration: SQLiteSessionStoreConfiguration(path: String(url.dropFirst("sqlite:".count))), logger: logger)
                return (MeteredSessionStore(store), [store])
            }
            if url.hasPrefix("redis://") || url.hasPrefix("rediss://") || RedisSentinel.isSentinelURL(url) {
                let store = try RedisSessionStore(configuration: try RedisSessionStoreConfiguration(urls: [url]), logger: logger)
                return (MeteredSessionStore(store), [])
            }
            if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                let store = PostgresSessionStore(configuration: try PostgresSessionStoreConfiguration(url: url), logger: logger)
                return (MeteredSessionStore(store), [store])
            }
        } catch {
            throw AppError.invalidConfiguration("store \(url): \(error)")
        }
        throw AppError.invalidConfiguration("store URL '\(url)' is not supported; use one of: \(forms.joined(separator: ", "))")
    }
}
