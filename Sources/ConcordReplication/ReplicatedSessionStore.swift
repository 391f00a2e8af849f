import ConcordSessions
import ServiceLifecycle

/// A ``SessionStore`` whose sessions are replicated between app nodes (`sync` or `ring`); run it as a `Service`.
public protocol ReplicatedSessionStore: SessionStore, Service {
    /// The node's replication parts.
    var member: ReplicationMember { get }
    /// Adds a peer at runtime.
    func addPeer(_ peer: ReplicationPeer)
    /// Removes a peer at runtime.
    func removePeer(id: String)
}

extension ReplicatedSessionStore {
    /// Whether the start-up state transfer is done; an app's `/ready` reports it.
    public var isReady: Bool { member.readiness.isReady }

    /// Returns once ``isReady`` holds.
    public func waitUntilReady() async throws { try await member.readiness.waitUntilReady() }

    /// Traffic counters (bytes and frames sent, records applied, peers cut off).
    public var statistics: ReplicationStatistics { member.node.statistics }

    /// Sessions (and tombstones) held in memory on this node.
    public var localRecordCount: Int { member.replica.count }

    /// The replication listener's port, once bound.
    public func listeningPort() async throws -> Int { try await member.node.listeningPort() }

    /// The current peers.
    public var peers: [ReplicationPeer] { member.node.peers }

    var replica: LocalReplica { member.replica }
    var node: ReplicationNode { member.node }
}
