import ConcordHashing

/// Settings of a `ring` store: the replication node's, plus where sessions are placed.
public struct RingSessionStoreConfiguration: Sendable {
    /// Transport, peers and limits (shared with `sync`).
    public var replication: ReplicationConfiguration
    /// Backups per session besides its owner (k). Each session lives on the first k + 1 distinct nodes for its id.
    /// Default 1.
    public var backups: Int
    /// The key→node algorithm; must be the one the proxy uses, over the same node ids. Default `.ring`.
    public var algorithm: HashAlgorithm
    /// After a membership change, how long a node keeps sessions it no longer holds (so peers can read them
    /// through) and reads through on a miss for sessions that moved to it. Default 10 s.
    public var handoffGracePeriod: Duration
    /// How long a read-through waits for peers' answers. Default 500 ms.
    public var readThroughTimeout: Duration

    public init(
        replication: ReplicationConfiguration = .init(),
        backups: Int = 1,
        algorithm: HashAlgorithm = .ring,
        handoffGracePeriod: Duration = .seconds(10),
        readThroughTimeout: Duration = .milliseconds(500)
    ) {
        self.replication = replication
        self.backups = max(0, backups)
        self.algorithm = algorithm
        self.handoffGracePeriod = handoffGracePeriod
        self.readThroughTimeout = readThroughTimeout
    }
}
