/// Counters of a ``NearCacheSessionStore`` since it was created.
///
/// Every load costs one store round trip either way: a hit checks the version (a few bytes) instead of
/// fetching the record, so what the cache saves is the payload transfer and the store's work, counted in
/// ``payloadFetchesSaved`` and ``payloadBytesSaved``.
public struct NearCacheSessionStoreStatistics: Sendable, Hashable {
    /// Sessions cached now.
    public var entries: Int
    /// Loads answered from the cache after the store confirmed the cached version.
    public var hits: Int
    /// Loads with nothing cached: one full load from the store.
    public var misses: Int
    /// Loads whose cached version was no longer the store's (another node wrote or deleted it): the entry was
    /// dropped and the record loaded again. This is the cache refusing to serve stale data.
    public var staleEntries: Int
    /// Entries dropped because the cache was full.
    public var evictions: Int
    /// Store calls made on behalf of `load` (version checks plus full loads).
    public var storeRoundTrips: Int
    /// Loads that fetched a version number instead of the record (the hits).
    public var payloadFetchesSaved: Int { hits }
    /// Payload bytes the hits did not fetch from the store.
    public var payloadBytesSaved: Int

    /// Loads served (hits, misses and stale entries).
    public var loads: Int { hits + misses + staleEntries }
}
