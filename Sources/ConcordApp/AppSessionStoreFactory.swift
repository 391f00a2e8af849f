import ConcordRedis
import ConcordSessions
import Logging
import ServiceLifecycle

/// The shared store a `store` or `store+near-cache` node uses, from its URL.
enum AppSessionStoreFactory {
    /// URL schemes this build understands.
    static let schemes = ["redis://"]

    /// The store for `url`, metered (its bytes count as intranet traffic), and the services it needs running.
    static func make(url: String, logger: Logger) throws -> (store: any SessionStore, services: [any Service]) {
        if url.hasPrefix("redis://") {
            do {
                let store = try RedisSessionStore(configuration: try RedisSessionStoreConfiguration(urls: [url]), logger: logger)
                return (MeteredSessionStore(store), [])
            } catch {
                throw AppError.invalidConfiguration("store \(url): \(error)")
            }
        }
        throw AppError.invalidConfiguration(
            "store URL '\(url)' is not supported by this build; use one of: \(schemes.joined(separator: ", "))")
    }
}
