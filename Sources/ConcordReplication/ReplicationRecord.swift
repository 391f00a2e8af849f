/// One session as replication ships it between nodes: the value and the stamp that orders it against other writes.
///
/// A record with `payload == nil` is a tombstone: the session was deleted, and the tombstone travels like a write
/// so that peers forget the session too; it expires after ``ReplicationConfiguration/tombstoneLifetime``.
///
/// Writes are ordered by ``OrderingKey`` (last writer wins); see docs/replication.md.
public struct ReplicationRecord: Sendable, Hashable {
    /// The session id.
    public var id: String
    /// The hybrid-logical-clock time at which this life of the id began (its first save after being absent).
    /// A session re-created after a delete or expiry starts a new, later incarnation, so it beats the old life.
    public var incarnation: UInt64
    /// The ``ConcordSessions/SessionStore`` version (1 on create, +1 per save; a tombstone keeps the last one).
    public var version: UInt64
    /// The hybrid-logical-clock time of this write (saves, touches and deletes all take a new one).
    public var timestamp: UInt64
    /// The node that made this write; the last tie-breaker.
    public var origin: String
    /// Wall-clock expiry in milliseconds since 1970 (for a tombstone: when it may be forgotten).
    public var expiresAt: UInt64
    /// The user the session belongs to, if any.
    public var userID: String?
    /// The encoded session, or `nil` for a tombstone.
    public var payload: [UInt8]?

    public init(
        id: String,
        incarnation: UInt64,
        version: UInt64,
        timestamp: UInt64,
        origin: String,
        expiresAt: UInt64,
        userID: String? = nil,
        payload: [UInt8]?
    ) {
        self.id = id
        self.incarnation = incarnation
        self.version = version
        self.timestamp = timestamp
        self.origin = origin
        self.expiresAt = expiresAt
        self.userID = userID
        self.payload = payload
    }

    /// Whether this record is a delete marker.
    public var isTombstone: Bool { payload == nil }

    /// The last-writer-wins order: (incarnation, version, timestamp, origin), compared left to right.
    public struct OrderingKey: Comparable, Sendable {
        var incarnation: UInt64
        var version: UInt64
        var timestamp: UInt64
        var origin: String

        public static func < (lhs: Self, rhs: Self) -> Bool {
            (lhs.incarnation, lhs.version, lhs.timestamp, lhs.origin)
                < (rhs.incarnation, rhs.version, rhs.timestamp, rhs.origin)
        }
    }

    public var orderingKey: OrderingKey {
        OrderingKey(incarnation: incarnation, version: version, timestamp: timestamp, origin: origin)
    }

    /// Whether this write wins over `other` for the same id.
    public func supersedes(_ other: ReplicationRecord) -> Bool {
        other.orderingKey < orderingKey
    }

    /// Whether the session is alive (not deleted, not expired) at `now` (ms since 1970).
    func isLive(at now: UInt64) -> Bool {
        payload != nil && expiresAt > now
    }
}

/// Called with the records from peers that changed this node's copy (benchmarks time replication lag with it).
/// It runs on the connection's task: keep it short.
public typealias RemoteApplyObserver = @Sendable ([ReplicationRecord]) -> Void
