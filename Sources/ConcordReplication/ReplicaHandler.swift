/// What a ``ReplicationNode`` asks of the store above it when peers talk to it. The `sync` and `ring` stores differ
/// only in which sessions a peer should hold.
protocol ReplicaHandler: Sendable {
    /// Merges writes a peer sent.
    /// - Returns: those that changed this node's copy.
    func applyFromPeer(_ records: [ReplicationRecord], peerID: String) -> [ReplicationRecord]
    /// Whether this node finished its own state transfer, so its answers are complete.
    var isReady: Bool { get }
    /// Every record (tombstones included) that the peer `peerID` should hold.
    func records(forPeer peerID: String) -> [ReplicationRecord]
    /// The records this node has among `ids`.
    func records(ids: [String]) -> [ReplicationRecord]
    /// The live records of `userID` this node holds.
    func records(forUser userID: String) -> [ReplicationRecord]
}
