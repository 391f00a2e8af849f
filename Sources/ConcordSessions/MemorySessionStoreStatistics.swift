/// Counters of a ``MemorySessionStore`` since it was created.
public struct MemorySessionStoreStatistics: Sendable, Hashable {
    /// Sessions held now (expired ones not yet swept included).
    public var sessions: Int
    /// Sessions dropped because the store was full (least recently used first).
    public var evictions: Int
    /// Expired sessions removed, by a sweep or when a read found them expired.
    public var expirations: Int
    /// Completed sweeps.
    public var sweeps: Int
}
