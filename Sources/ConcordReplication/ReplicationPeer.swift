/// Another node of the replication group: its node id (the name the proxy's ring uses for it) and where it listens.
public struct ReplicationPeer: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The node's id; unique in the group and equal to its backend name on the proxy's ring.
    public var id: String
    /// The host or IP address the node's replication listener is bound to.
    public var host: String
    /// The port of the node's replication listener.
    public var port: Int

    public init(id: String, host: String, port: Int) {
        self.id = id
        self.host = host
        self.port = port
    }

    public var description: String { "\(id)@\(host):\(port)" }
}
