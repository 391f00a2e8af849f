/// Settings of a ``MemorySessionStore``.
public struct MemorySessionStoreConfiguration: Sendable, Hashable {
    /// Most sessions kept; saving a new one beyond this evicts the least recently used. Default 100 000.
    public var maximumSessions: Int
    /// Largest payload accepted, in bytes; bigger saves throw ``SessionStoreError/tooLarge(size:limit:)``.
    /// Default 1 MiB.
    public var maximumPayloadSize: Int
    /// How often ``MemorySessionStore/run()`` removes expired sessions (reads skip them anyway). Default 60 s.
    public var sweepInterval: Duration

    /// - Parameters:
    ///   - maximumSessions: most sessions kept (LRU eviction beyond), default 100 000.
    ///   - maximumPayloadSize: largest payload in bytes, default 1 MiB.
    ///   - sweepInterval: time between sweeps of expired sessions, default 60 s.
    public init(maximumSessions: Int = 100_000, maximumPayloadSize: Int = 1 << 20, sweepInterval: Duration = .seconds(60)) {
        precondition(maximumSessions > 0, "maximumSessions must be positive")
        self.maximumSessions = maximumSessions
        self.maximumPayloadSize = maximumPayloadSize
        self.sweepInterval = sweepInterval
    }
}
