import ConcordSessions
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The `sync` strategy: every node holds every session, and every write (save, touch, delete) goes to every peer
/// (all-to-all, like Tomcat's DeltaManager). Any node can serve any user; the costs are memory (n copies) and
/// bandwidth (n − 1 copies of each write).
///
/// Writes are batched per peer and merged last-writer-wins (see ``ReplicationRecord/OrderingKey`` and
/// docs/replication.md). `expectedVersion` is checked against this node's copy, so two nodes can accept concurrent
/// writes of one session; they converge to one of them everywhere.
///
/// Run it as a `Service`: it listens for peers, connects to them, copies the state of a ready peer, and only then
/// reports ``isReady``.
public final class SyncSessionStore: ReplicatedSessionStore {
    public let configuration: ReplicationConfiguration
    public let member: ReplicationMember
    /// Loads of unknown sessions asking the peers at one time, at most (see ``load(id:)``).
    public let maximumConcurrentMissReads: Int
    /// How long a load of a session this node does not have waits for its peers' copies (see ``load(id:)``).
    public let missReadTimeout: Duration
    private let missReadsInFlight = Atomic<Int>(0)

    public init(
        configuration: ReplicationConfiguration = .init(),
        wallClock: SessionWallClock = .system,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maximumConcurrentMissReads: Int = 64,
        missReadTimeout: Duration = .milliseconds(500),
        onRemoteApply: RemoteApplyObserver? = nil,
        logger: Logger = Logger(label: "concord.replication.sync")
    ) {
        self.configuration = configuration
        self.maximumConcurrentMissReads = max(0, maximumConcurrentMissReads)
        self.missReadTimeout = missReadTimeout
        self.member = ReplicationMember(
            configuration: configuration, wallClock: wallClock, eventLoopGroup: eventLoopGroup,
            onRemoteApply: onRemoteApply, logger: logger, makeHandler: SyncReplicaHandler.init)
    }

    public func addPeer(_ peer: ReplicationPeer) { node.addPeer(peer) }

    public func removePeer(id: String) { node.removePeer(id: id) }

    /// Listens for peers, connects to them, copies a ready peer's state (then reports ready), and sweeps expired
    /// sessions, until cancelled or graceful shutdown.
    public func run() async throws {
        try await member.run(strategy: "sync", needsEveryPeer: false)
    }

    // MARK: SessionStore

    /// The local copy; when this node has none (no record, not even a tombstone), the connected peers are asked
    /// first. Replication is asynchronous (≈ 0.1–0.7 ms behind, docs/replication.md), so without that a user sent to
    /// this node right after logging in on another — a login's redirect through a round-robin proxy — could be
    /// answered "no session". The copy found is kept (every `sync` node holds every session).
    ///
    /// Cookies naming sessions nobody has (expired, forged, random) would each cost a round trip to every peer, and
    /// with a stalled peer up to ``missReadTimeout``; so at most ``maximumConcurrentMissReads`` such loads ask at a
    /// time, and the others answer from this node's copy alone (counted in
    /// ``ReplicationStatistics/missReadsSkipped``).
    public func load(id: String) async throws -> StoredSession? {
        if replica.record(id: id) == nil, id.utf8.count <= LocalReplica.maximumIdentifierBytes {
            if missReadsInFlight.wrappingAdd(1, ordering: .relaxed).newValue <= maximumConcurrentMissReads {
                defer { missReadsInFlight.wrappingSubtract(1, ordering: .relaxed) }
                let copies = await node.gather(from: node.peerIDs, timeout: missReadTimeout) {
                    try await self.node.fetch(ids: [id], from: $0)
                }
                if !copies.isEmpty { _ = replica.apply(copies) }
            } else {
                missReadsInFlight.wrappingSubtract(1, ordering: .relaxed)
                statistics.recordMissReadSkipped()
            }
        }
        return replica.load(id: id)
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        let record = try replica.save(session, ttl: ttl, expectedVersion: expectedVersion)
        await node.broadcast(record)
        return record.version
    }

    public func delete(id: String) async throws {
        await node.broadcast(replica.delete(id: id))
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        guard let record = replica.touch(id: id, ttl: ttl) else { return false }
        await node.broadcast(record)
        return true
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        replica.liveIDs(forUser: userID)
    }
}

/// `sync`'s answers to peers: everyone should hold everything.
private struct SyncReplicaHandler: ReplicaHandler {
    let replica: LocalReplica
    let readiness: ReplicationReadiness

    var isReady: Bool { readiness.isReady }

    func applyFromPeer(_ records: [ReplicationRecord], peerID: String) -> [ReplicationRecord] {
        replica.apply(records)
    }

    func records(forPeer peerID: String) -> [ReplicationRecord] { replica.snapshot() }

    func records(ids: [String]) -> [ReplicationRecord] { replica.records(ids: ids) }

    func records(forUser userID: String) -> [ReplicationRecord] { replica.liveRecords(forUser: userID) }
}
