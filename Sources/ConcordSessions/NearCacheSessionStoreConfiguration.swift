/// Settings of a ``NearCacheSessionStore``.
public struct NearCacheSessionStoreConfiguration: Sendable, Hashable {
    /// Most sessions kept in this process; beyond it the least recently used is dropped. Default 10 000
    /// (memory: about this many times the average payload).
    public var maximumEntries: Int
    /// Payloads larger than this are not cached (they pass straight through). Default 256 KiB.
    public var maximumEntryPayloadSize: Int

    /// - Parameters:
    ///   - maximumEntries: most cached sessions (LRU beyond), default 10 000.
    ///   - maximumEntryPayloadSize: largest payload cached, in bytes, default 256 KiB.
    public init(maximumEntries: Int = 10_000, maximumEntryPayloadSize: Int = 256 << 10) {
        precondition(maximumEntries > 0, "maximumEntries must be positive")
        self.maximumEntries = maximumEntries
        self.maximumEntryPayloadSize = maximumEntryPayloadSize
    }
}
