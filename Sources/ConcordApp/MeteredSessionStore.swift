import ConcordSessions
import Metrics

/// Counts the bytes a node exchanges with its session store (ids and payloads, both ways) into
/// `concord_app_intranet_bytes_total{kind="store"}`, which the lab reads from `/metrics`.
struct MeteredSessionStore: SessionStore {
    let base: any SessionStore

    func checkAnswers() async -> SessionStoreError? { await base.checkAnswers() }
    private let bytes = Counter(label: "concord_app_intranet_bytes_total", dimensions: [("kind", "store")])

    init(_ base: any SessionStore) { self.base = base }

    func load(id: String) async throws -> StoredSession? {
        let session = try await base.load(id: id)
        bytes.increment(by: id.utf8.count + (session?.payload.count ?? 0))
        return session
    }

    func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        bytes.increment(by: session.id.utf8.count + session.payload.count + (session.userID?.utf8.count ?? 0))
        return try await base.save(session, ttl: ttl, expectedVersion: expectedVersion)
    }

    func delete(id: String) async throws {
        bytes.increment(by: id.utf8.count)
        try await base.delete(id: id)
    }

    func touch(id: String, ttl: Duration) async throws -> Bool {
        bytes.increment(by: id.utf8.count)
        return try await base.touch(id: id, ttl: ttl)
    }

    func version(id: String) async throws -> UInt64? {
        bytes.increment(by: id.utf8.count + 8)
        return try await base.version(id: id)
    }

    func sessionIDs(forUser userID: String) async throws -> [String] {
        let ids = try await base.sessionIDs(forUser: userID)
        bytes.increment(by: userID.utf8.count + ids.reduce(0) { $0 + $1.utf8.count })
        return ids
    }

    func deleteAll(forUser userID: String) async throws -> Int {
        bytes.increment(by: userID.utf8.count)
        return try await base.deleteAll(forUser: userID)
    }
}
