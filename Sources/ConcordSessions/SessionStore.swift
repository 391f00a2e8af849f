/// Where server-side sessions live: memory, Redis, PostgreSQL, SQLite, a replicated peer set.
///
/// Every operation throws only ``SessionStoreError``; backends map their own errors to it.
///
/// Every backend implements this one protocol and runs the same conformance suite
/// (`ConcordSessionsTesting`). The payload is opaque bytes: the store never decodes the app's session type.
///
/// Versions give optimistic concurrency. A record's `version` starts at 1 when first saved and grows by one on
/// every save. `save(_:ttl:expectedVersion:)` with an `expectedVersion` writes only when the stored version equals
/// it (`0` means "must not exist yet"); otherwise it throws ``SessionStoreError/conflict``. With `nil` it writes
/// unconditionally (last writer wins), which callers use only for data they own alone.
public protocol SessionStore: Sendable {
    /// The record for `id`, or `nil` when it does not exist or has expired.
    func load(id: String) async throws -> StoredSession?

    /// Writes `session.payload` (and `session.userID`) for `session.id`, living `ttl` from now.
    /// - Returns: the version now stored (the previous version plus one, or 1 for a new record).
    /// - Throws: ``SessionStoreError`` `.conflict` when `expectedVersion` is given and differs from the stored one;
    ///   `.tooLarge` when the payload exceeds the backend's limit; `.unavailable` when the backend cannot be reached.
    func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64

    /// Removes `id`. Deleting a missing id is not an error.
    func delete(id: String) async throws

    /// Extends the life of `id` to `ttl` from now without rewriting it or changing its version.
    /// - Returns: `false` when the id does not exist (or has expired).
    func touch(id: String, ttl: Duration) async throws -> Bool

    /// The current version of `id` without its payload (`nil` if absent). Near caches use it to validate an entry
    /// cheaply; backends that cannot do better may load the whole record.
    func version(id: String) async throws -> UInt64?

    /// The ids of every live session that was saved with `userID`.
    func sessionIDs(forUser userID: String) async throws -> [String]

    /// Deletes every session of `userID` (e.g. after a password change).
    /// - Returns: how many sessions were deleted.
    func deleteAll(forUser userID: String) async throws -> Int

    /// Whether the store can serve sessions at all, asked once at start (``checkAnswers()`` below is the default; a
    /// backend adds what only it can check, a wrapper asks what it wraps).
    func checkAnswers() async -> SessionStoreError?
}

extension SessionStore {
    public func version(id: String) async throws -> UInt64? {
        try await load(id: id)?.version
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        let ids = try await sessionIDs(forUser: userID)
        for id in ids { try await delete(id: id) }
        return ids.count
    }
}

extension SessionStore {
    /// Asks the store once to extend the life of a session that does not exist (`touch`, a write that changes
    /// nothing) and for its version: `nil` when it answered both, otherwise why not — a server that is down, a
    /// wrong password or database, a read-only replica, a file that cannot be opened or written. Call it once the
    /// store's services run, for a log line at start (what `concord app` does); otherwise the first session
    /// request is the first to hear of a store that can never work, as a 503. Each call waits at most the store's
    /// own operation timeout.
    public func checkAnswers() async -> SessionStoreError? { await checkTouchAndVersionAnswer() }

    /// The default ``checkAnswers()``: a touch and a version of a session that does not exist.
    public func checkTouchAndVersionAnswer() async -> SessionStoreError? {
        do {
            _ = try await touch(id: "concord-startup-check", ttl: .seconds(1))
            _ = try await version(id: "concord-startup-check")
            return nil
        } catch let error as SessionStoreError {
            return error
        } catch {
            return .unavailable("\(error)")
        }
    }
}
