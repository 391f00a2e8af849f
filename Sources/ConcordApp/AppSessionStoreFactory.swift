import ConcordPostgres
import ConcordRedis
import ConcordSQLite
import ConcordSessions
import Foundation
import Logging
import ServiceLifecycle

/// The shared store a `store` or `store+near-cache` node uses, from its URL.
enum AppSessionStoreFactory {
    /// A store URL read and checked, nothing opened yet.
    private enum StoreSettings {
        case sqlite(SQLiteSessionStoreConfiguration)
        case redis(RedisSessionStoreConfiguration)
        case postgres(PostgresSessionStoreConfiguration)
    }

    /// Whether `url` names a store this build can open, without opening it (the command line's check: a bad URL
    /// is then a usage error, exit 64, before anything starts).
    static func check(url: String) throws {
        if case .redis(let configuration) = try settings(for: url) {
            // The TLS files are read when the client is made; a missing or unreadable one is the URL's fault too
            // (exit 64 with the other URL errors; it was exit 1 at start before 2026-12-03).
            var checked = Set<RedisTLS>()
            for tls in configuration.client.endpoints.compactMap(\.tls) where checked.insert(tls).inserted {
                _ = try invalidIfThrows(url) { try tls.makeContext() }
            }
        }
    }

    /// The store for `url`, metered (its bytes count as intranet traffic), and the services it needs running.
    static func make(url: String, logger: Logger) throws -> (store: any SessionStore, services: [any Service]) {
        switch try settings(for: url) {
        case .sqlite(let configuration):
            let store = SQLiteSessionStore(configuration: configuration, logger: logger)
            return (MeteredSessionStore(store), [store])
        case .redis(let configuration):
            let store = try invalidIfThrows(url) { try RedisSessionStore(configuration: configuration, logger: logger) }
            return (MeteredSessionStore(store), [])
        case .postgres(let configuration):
            let store = PostgresSessionStore(configuration: configuration, logger: logger)
            return (MeteredSessionStore(store), [store])
        }
    }

    private static func settings(for url: String) throws -> StoreSettings {
        switch StoreURL(url) {
        case .sqlite(let path):
            try checkSQLitePath(path)
            return .sqlite(SQLiteSessionStoreConfiguration(path: path))
        case .redis:
            return .redis(try invalidIfThrows(url) { try RedisSessionStoreConfiguration(storeURL: url) })
        case .postgres:
            return .postgres(try invalidIfThrows(url) { try PostgresSessionStoreConfiguration(url: url) })
        case nil:
            throw AppError.invalidConfiguration("store URL '\(StoreURL.redacted(url))' is not supported; use one of: \(StoreURL.forms.joined(separator: ", "))")
        }
    }

    /// `body`'s result, its error told as the store URL's.
    private static func invalidIfThrows<T>(_ url: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw AppError.invalidConfiguration("store \(StoreURL.redacted(url)): \(error)") }
    }

    /// A SQLite store is a file that several processes share. An empty path or `:memory:` gives every connection
    /// a database of its own (the node started, said it was ready, and answered every session request 503 "no such
    /// table"), and a file in a directory that does not exist can never be opened (503 "cantOpen" on every request):
    /// both are refused at start, as are a directory, a file that is not an SQLite database (500 "notADatabase" on
    /// every request before 2026-12-03) and one this process cannot read or write.
    private static func checkSQLitePath(_ path: String) throws {
        do {
            try SQLiteSessionStoreConfiguration(path: path).checkFile(shared: true)
        } catch {
            throw AppError.invalidConfiguration("store sqlite:\(path): \(error.reason)")
        }
    }
}
