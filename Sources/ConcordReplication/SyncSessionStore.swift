import ConcordSessions
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

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
public final class SyncSessionStore: SessionStore, Service {
    public let configuration: ReplicationConfiguration
    /// Whether the start-up state transfer is done; `/ready` should report it.
    public let readiness = ReplicationReadiness()
    let replica: LocalReplica
    let node: ReplicationNode
    private let logger: Logger

    public init(
        configuration: ReplicationConfiguration = .init(),
        wallClock: WallClock = .system,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "concord.replication.sync")
    ) {
        self.configuration = configuration
        self.logger = logger
        let replica = LocalReplica(
            nodeID: configuration.nodeID, wallClock: wallClock,
            maximumSessionBytes: configuration.maximumSessionBytes,
            tombstoneLifetime: configuration.tombstoneLifetime)
        self.replica = replica
        self.node = ReplicationNode(
            configuration: configuration,
            handler: SyncReplicaHandler(replica: replica, readiness: readiness),
            eventLoopGroup: eventLoopGroup, logger: logger)
    }

    public var isReady: Bool { readiness.isReady }

    public func waitUntilReady() async throws { try await readiness.waitUntilReady() }

    /// Traffic counters (bytes and frames sent, records applied, peers cut off).
    public var statistics: ReplicationStatistics { node.statistics }

    /// Sessions (and tombstones) held in memory on this node.
    public var localRecordCount: Int { replica.count }

    /// The replication listener's port, once bound.
    public func listeningPort() async throws -> Int { try await node.listeningPort() }

    public func addPeer(_ peer: ReplicationPeer) { node.addPeer(peer) }

    public func removePeer(id: String) { node.removePeer(id: id) }

    public var peers: [ReplicationPeer] { node.peers }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.node.run() }
                group.addTask {
                    let start = ContinuousClock.now
                    let outcome = await StateTransfer.run(
                        node: self.node, replica: self.replica, needsEveryPeer: false,
                        deadline: self.configuration.stateTransferTimeout, logger: self.logger)
                    guard !Task.isCancelled else { return }
                    self.readiness.markReady()
                    self.logger.info(
                        "sync replication ready",
                        metadata: [
                            "copied_from": "\(outcome.sources)", "records": "\(outcome.recordCount)",
                            "took": "\(ContinuousClock.now - start)",
                        ])
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: self.configuration.sweepInterval)
                        self.replica.sweep()
                    }
                }
            }
        }
    }

    // MARK: SessionStore

    public func load(id: String) async throws -> StoredSession? {
        replica.load(id: id)
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

    func applyFromPeer(_ records: [ReplicationRecord], peerID: String) -> Int {
        replica.apply(records).count
    }

    func records(forPeer peerID: String) -> [ReplicationRecord] { replica.snapshot() }

    func records(ids: [String]) -> [ReplicationRecord] { replica.records(ids: ids) }
}
