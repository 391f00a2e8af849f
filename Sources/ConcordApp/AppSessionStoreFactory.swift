import ConcordPostgres
import ConcordRedis
import ConcordSQLite
import ConcordSessions
import Foundation
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
        if url.hasPrefix("sqlite:") {
            let path = String(url.dropFirst("sqlite:".count))
            try checkSQLitePath(path)
            let store = SQLiteSessionStore(configuration: SQLiteSessionStoreConfiguration(path: path), logger: logger)
            return (MeteredSessionStore(store), [store])
        }
        do {
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

    /// A SQLite store is a file that several processes share. An empty path or `:memory:` gives every connection
    /// a database of its own (the node started, said it was ready, and answered every session request 503 "no such
    /// table"), and a file in a directory that does not exist can never be opened (503 "cantOpen" on every request):
    /// both are refused at start.
    private static func checkSQLitePath(_ path: String) throws {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file::memory:") else {
            throw AppError.invalidConfiguration(
                "store sqlite:\(path): give a file path (sqlite:PATH); an empty path or :memory: is a private database per connection, which the app's connections and other nodes cannot share")
        }
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard directory.isEmpty || (FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue) else {
            throw AppError.invalidConfiguration("store sqlite:\(path): the directory \(directory) does not exist")
        }
    }
}
