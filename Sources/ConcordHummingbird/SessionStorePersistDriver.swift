import ConcordSessions
import Foundation
import Hummingbird

/// Any ``SessionStore`` as Hummingbird's `PersistDriver`, so apps using HummingbirdAuth's own `SessionMiddleware`
/// (or `PersistDriver` directly) can keep their data in Concord's stores: Redis, PostgreSQL, SQLite, replicated.
///
/// Values are stored as JSON. `create` is a conditional save (`expectedVersion` 0), so it is atomic even across
/// servers. A `nil` expiry means ``defaultTTL``: stores always expire records, and `set` cannot read the
/// remaining TTL to keep it.
public struct SessionStorePersistDriver: PersistDriver {
    public let store: any SessionStore
    /// The TTL used when the caller passes none. Default 12 hours.
    public let defaultTTL: Duration

    public init(store: any SessionStore, defaultTTL: Duration = .seconds(12 * 60 * 60)) {
        self.store = store
        self.defaultTTL = defaultTTL
    }

    public func create<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        do {
            _ = try await store.save(StoredSession(id: key, payload: try encode(value)), ttl: expires ?? defaultTTL, expectedVersion: 0)
        } catch let error as SessionStoreError where error.isConflict {
            throw PersistError.duplicate
        }
    }

    public func set<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        _ = try await store.save(StoredSession(id: key, payload: try encode(value)), ttl: expires ?? defaultTTL, expectedVersion: nil)
    }

    public func get<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> Object? {
        guard let stored = try await store.load(id: key) else { return nil }
        do {
            return try JSONDecoder().decode(Object.self, from: Data(stored.payload))
        } catch {
            throw PersistError.invalidConversion
        }
    }

    public func remove(key: String) async throws {
        try await store.delete(id: key)
    }

    private func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try JSONEncoder().encode(value))
    }
}
