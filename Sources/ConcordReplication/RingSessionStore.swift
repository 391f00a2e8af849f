import ConcordHashing
import ConcordSessions
import Logging
import NIOCore
import NIOPosix

/// The `ring` strategy: each session lives on its owner and k backups — the first k + 1 distinct nodes for its id
/// on the same ConcordHashing selection the proxy uses — so when the owner dies, the proxy's next choice for the
/// session is exactly a node that holds it. Memory per node ≈ (k + 1)/n of all sessions, bytes per write ∝ k.
///
/// - Writes go from the node that takes them to the session's other holders (batched, as in `sync`).
/// - A membership change hands sessions whose holders changed to their new holders in the background; a node asked
///   for a session it should hold but lacks reads it through from its holders before the change.
/// - A node that starts copies its share from every peer (state transfer) and only then reports ``isReady``.
/// - A node asked about a session it does not hold (the proxy fell back past all holders) answers from the
///   holders; a write there keeps a short-lived copy so conditional writes through that node stay atomic.
public final class RingSessionStore: ReplicatedSessionStore {
    public let configuration: RingSessionStoreConfiguration
    public let member: ReplicationMember
    let placement: RingPlacement
    private let handoffs: AsyncStream<Void>
    private let handoffSignal: AsyncStream<Void>.Continuation

    public init(
        configuration: RingSessionStoreConfiguration = .init(),
        wallClock: SessionWallClock = .system,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onRemoteApply: RemoteApplyObserver? = nil,
        logger: Logger = Logger(label: "concord.replication.ring")
    ) {
        self.configuration = configuration
        let replication = configuration.replication
        let placement = RingPlacement(
            selfID: replication.nodeID, members: Set(replication.peers.map(\.id)), backups: configuration.backups,
            algorithm: configuration.algorithm, gracePeriod: configuration.handoffGracePeriod)
        self.placement = placement
        self.member = ReplicationMember(
            configuration: replication, wallClock: wallClock, eventLoopGroup: eventLoopGroup,
            onRemoteApply: onRemoteApply, logger: logger
        ) { replica, readiness in
            RingReplicaHandler(replica: replica, placement: placement, readiness: readiness)
        }
        (handoffs, handoffSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    private var nodeID: String { configuration.replication.nodeID }
    private var replicaCount: Int { configuration.backups + 1 }
    private var logger: Logger { member.logger }

    /// Adds a node: placements change, and sessions that now belong (also) to it are handed to it.
    public func addPeer(_ peer: ReplicationPeer) {
        node.addPeer(peer)
        membershipChanged()
    }

    /// Removes a node: its sessions' remaining holders hand copies to the nodes that replace it.
    public func removePeer(id: String) {
        node.removePeer(id: id)
        membershipChanged()
    }

    /// The ids of the nodes that hold `sessionID`, owner first.
    public func holders(of sessionID: String) -> [String] {
        placement.snapshot.holders(of: sessionID, count: replicaCount)
    }

    private func membershipChanged() {
        if placement.update(members: Set(node.peerIDs)) { handoffSignal.yield() }
    }

    /// Listens for peers, connects to them, copies its share from every peer (then reports ready), hands sessions
    /// off on membership changes, and sweeps, until cancelled or graceful shutdown.
    public func run() async throws {
        try await member.run(
            strategy: "ring", needsEveryPeer: true,
            afterSweep: { self.dropSessionsHeldElsewhere() },
            alongside: [{ for await _ in self.handoffs { await self.handOff() } }])
    }

    // MARK: Placement changes

    /// Sends each session whose holders changed to its new holders. Exactly one node sends each session: the first
    /// of its previous holders that is still a member.
    private func handOff() async {
        let snapshot = placement.snapshot
        guard snapshot.previous != nil else { return }
        var sent = 0
        for record in replica.snapshot() {
            let now = snapshot.holders(of: record.id, count: replicaCount)
            let before = snapshot.previousHolders(of: record.id, count: replicaCount)
            let targets = now.filter { !before.contains($0) && $0 != nodeID }
            guard !targets.isEmpty, before.first(where: { snapshot.members.contains($0) }) == nodeID else { continue }
            await node.send(record, to: targets)
            sent += 1
        }
        logger.info("ring hand-off queued \(sent) sessions for their new holders")
    }

    /// Once placements have settled, forgets sessions this node no longer holds (their holders have them) and
    /// has not written for a grace period (a copy a non-holder wrote keeps its conditional writes atomic while its
    /// writes are still on their way to the holders).
    private func dropSessionsHeldElsewhere() {
        let snapshot = placement.snapshot
        guard snapshot.previous == nil else { return }
        let cutoff = replica.hybridTimestamp(millisecondsAgo: configuration.handoffGracePeriod.nonNegativeMilliseconds)
        let foreign = replica.snapshot().filter {
            $0.timestamp < cutoff && !snapshot.holders(of: $0.id, count: replicaCount).contains(nodeID)
        }
        if !foreign.isEmpty { replica.remove(foreign.map(\.id)) }
    }

    // MARK: Read-through

    /// Makes the local copy of `id` current when it may not be: this node holds the session but it moved here
    /// recently, or this node does not hold it at all (then the copy is kept only for a grace period).
    private func refresh(id: String) async {
        replica.apply(await readThrough(id: id))
    }

    /// The holders' records for `id` when the local copy may not be current (see ``refresh(id:)``); else none.
    private func readThrough(id: String) async -> [ReplicationRecord] {
        let snapshot = placement.snapshot
        let holders = snapshot.holders(of: id, count: replicaCount)
        let isHolder = holders.contains(nodeID)
        let previous = snapshot.previousHolders(of: id, count: replicaCount)
        let movedHere = snapshot.previous != nil && !previous.contains(nodeID)
        guard !isHolder || (movedHere && replica.record(id: id) == nil) else { return [] }
        guard id.utf8.count <= LocalReplica.maximumIdentifierBytes else { return [] }
        var sources = holders.filter { $0 != nodeID }
        for peer in previous where peer != nodeID && !sources.contains(peer) { sources.append(peer) }
        return await gather(from: sources) { try await self.node.fetch(ids: [id], from: $0) }
    }

    /// The connected ones of `peers`, asked at once within the read-through timeout.
    private func gather(
        from peers: [String],
        _ request: @escaping @Sendable (String) async throws -> PeerResponse
    ) async -> [ReplicationRecord] {
        await node.gather(from: peers, timeout: configuration.readThroughTimeout, request)
    }

    /// Sends a local write to the session's other holders (and, during a hand-off, to its previous ones).
    private func replicate(_ record: ReplicationRecord) async {
        let snapshot = placement.snapshot
        var targets = Set(snapshot.holders(of: record.id, count: replicaCount))
        targets.formUnion(snapshot.previousHolders(of: record.id, count: replicaCount))
        targets.remove(nodeID)
        await node.send(record, to: targets)
    }

    // MARK: SessionStore

    /// Answers from the local copy, merged with the holders' copies when it may not be current. A read keeps no
    /// new copy on a node that does not hold the session.
    public func load(id: String) async throws -> StoredSession? {
        replica.load(id: id, mergedWith: await readThrough(id: id))
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        await refresh(id: session.id)
        let record = try replica.save(session, ttl: ttl, expectedVersion: expectedVersion)
        await replicate(record)
        return record.version
    }

    public func delete(id: String) async throws {
        await refresh(id: id)
        await replicate(replica.delete(id: id))
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        await refresh(id: id)
        guard let record = replica.touch(id: id, ttl: ttl) else { return false }
        await replicate(record)
        return true
    }

    /// Asks every connected peer too, since each node holds only part of a user's sessions.
    public func sessionIDs(forUser userID: String) async throws -> [String] {
        let remote = await gather(from: node.peerIDs) { try await self.node.userQuery(userID, from: $0) }
        return replica.liveIDs(forUser: userID, mergedWith: remote)
    }
}

/// Runs `operation`, giving up with `nil` after `timeout`.
func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ operation: @escaping @Sendable () async -> T?
) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await operation() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        return await group.next() ?? nil
    }
}

/// `ring`'s answers to peers: a peer should hold the sessions it is a holder of.
private struct RingReplicaHandler: ReplicaHandler {
    let replica: LocalReplica
    let placement: RingPlacement
    let readiness: ReplicationReadiness

    var isReady: Bool { readiness.isReady }

    func applyFromPeer(_ records: [ReplicationRecord], peerID: String) -> [ReplicationRecord] {
        replica.apply(records)
    }

    func records(forPeer peerID: String) -> [ReplicationRecord] {
        let snapshot = placement.snapshot
        return replica.snapshot { snapshot.holders(of: $0, count: placement.replicaCount).contains(peerID) }
    }

    func records(ids: [String]) -> [ReplicationRecord] { replica.records(ids: ids) }

    func records(forUser userID: String) -> [ReplicationRecord] { replica.liveRecords(forUser: userID) }
}
