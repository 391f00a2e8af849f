/// Why a request to a peer (state transfer, read-through) got no answer.
public struct ReplicationRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case timedOut(peer: String, after: Duration)
        case connectionLost(peer: String)
        case peerRemoved(peer: String)
        case unknownPeer(String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The peer did not answer in time.
    static func timedOut(peer: String, after: Duration) -> Self { Self(.timedOut(peer: peer, after: after)) }
    /// The connection closed after the request was sent.
    static func connectionLost(peer: String) -> Self { Self(.connectionLost(peer: peer)) }
    /// The peer was removed from the group (or the node stopped) while the request waited.
    static func peerRemoved(peer: String) -> Self { Self(.peerRemoved(peer: peer)) }
    /// No peer with this id is configured.
    static func unknownPeer(_ peer: String) -> Self { Self(.unknownPeer(peer)) }

    public var description: String {
        switch base {
        case .timedOut(let peer, let after): "replication peer \(peer) did not answer within \(after)"
        case .connectionLost(let peer): "connection to replication peer \(peer) lost before it answered"
        case .peerRemoved(let peer): "replication peer \(peer) was removed"
        case .unknownPeer(let peer): "no replication peer named \(peer)"
        }
    }
}
