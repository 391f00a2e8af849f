/// Settings of one replication node, shared by the `sync` and `ring` stores. Defaults run on one machine.
public struct ReplicationConfiguration: Sendable, Codable {
    /// This node's id; unique in the group and equal to its backend name on the proxy's ring. Default `"node-1"`.
    public var nodeID: String
    /// The address the replication listener binds to. Default `"127.0.0.1"`.
    public var host: String
    /// The replication listener's port; `0` picks a free one (read it back with `listeningPort()`). Default `0`.
    public var port: Int
    /// The other nodes at start; more can be added and removed at runtime. Default none.
    public var peers: [ReplicationPeer]
    /// The largest frame a peer may send or this node will build. Default 4 MiB.
    public var maximumFrameBytes: Int
    /// The largest session payload a save accepts (`SessionStoreError.tooLarge` above it). Default 512 KiB.
    public var maximumSessionBytes: Int
    /// Writes coalesced into one frame, at most (fewer when the frame would exceed `batchBytes`). Default 512.
    public var batchRecords: Int
    /// Target frame size for batches and state-transfer chunks. Default 256 KiB.
    public var batchBytes: Int
    /// Distinct sessions waiting for one peer, at most. A writer that finds a connected peer's queue full waits
    /// (backpressure) up to `enqueueTimeout`; a disconnected peer's overflow is dropped and the peer gets a full
    /// push when it reconnects. Default 65 536.
    public var maximumQueuedRecords: Int
    /// How long a writer waits for room in a full queue before the queue is dropped for a full push. Default 1 s.
    public var enqueueTimeout: Duration
    /// How long a delete's tombstone is kept (and resent) so that every peer forgets the session. Default 60 s.
    public var tombstoneLifetime: Duration
    /// First reconnect delay; it doubles per failed attempt up to `maximumReconnectDelay`. Default 50 ms.
    public var initialReconnectDelay: Duration
    /// Longest reconnect delay. Default 2 s.
    public var maximumReconnectDelay: Duration
    /// TCP connect timeout. Default 1 s.
    public var connectTimeout: Duration
    /// How long a connection the listener accepted may take to send its hello before it is closed. Default 10 s.
    public var helloTimeout: Duration
    /// A secret every node of the cluster shares (16 bytes or more): each connection's hello then proves the caller
    /// knows it (``ReplicationHelloProof``) and a caller that cannot is cut off before it is served anything.
    /// `nil` (the default): any caller that says hello is served — run the replication port on a private network.
    public var sharedSecret: [UInt8]?
    /// How long a state transfer or a read-through may take per peer. Default 10 s.
    public var requestTimeout: Duration
    /// How long a starting node looks for a ready peer to copy before it starts empty. Default 5 s.
    public var stateTransferTimeout: Duration
    /// How often expired sessions and tombstones are swept from memory. Default 1 s.
    public var sweepInterval: Duration

    public init(
        nodeID: String = "node-1",
        host: String = "127.0.0.1",
        port: Int = 0,
        peers: [ReplicationPeer] = [],
        maximumFrameBytes: Int = 4 << 20,
        maximumSessionBytes: Int = 512 << 10,
        batchRecords: Int = 512,
        batchBytes: Int = 256 << 10,
        maximumQueuedRecords: Int = 65_536,
        enqueueTimeout: Duration = .seconds(1),
        tombstoneLifetime: Duration = .seconds(60),
        initialReconnectDelay: Duration = .milliseconds(50),
        maximumReconnectDelay: Duration = .seconds(2),
        connectTimeout: Duration = .seconds(1),
        helloTimeout: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(10),
        stateTransferTimeout: Duration = .seconds(5),
        sweepInterval: Duration = .seconds(1),
        sharedSecret: [UInt8]? = nil
    ) {
        self.nodeID = nodeID
        self.host = host
        self.port = port
        self.peers = peers
        self.maximumFrameBytes = maximumFrameBytes
        self.maximumSessionBytes = maximumSessionBytes
        self.batchRecords = batchRecords
        self.batchBytes = batchBytes
        self.maximumQueuedRecords = maximumQueuedRecords
        self.enqueueTimeout = enqueueTimeout
        self.tombstoneLifetime = tombstoneLifetime
        self.initialReconnectDelay = initialReconnectDelay
        self.maximumReconnectDelay = maximumReconnectDelay
        self.connectTimeout = connectTimeout
        self.helloTimeout = helloTimeout
        self.requestTimeout = requestTimeout
        self.stateTransferTimeout = stateTransferTimeout
        self.sweepInterval = sweepInterval
        self.sharedSecret = sharedSecret
    }

    /// Every setting but `sharedSecret`: an encoded configuration (a dump, a log line, a file written back) never
    /// carries the secret, and a decoded one has none — give it in code or from the environment
    /// (`CONCORD_REPLICATION_SECRET` for `concord app`).
    private enum CodingKeys: String, CodingKey {
        case nodeID, host, port, peers, maximumFrameBytes, maximumSessionBytes, batchRecords, batchBytes
        case maximumQueuedRecords, enqueueTimeout, tombstoneLifetime, initialReconnectDelay, maximumReconnectDelay
        case connectTimeout, helloTimeout, requestTimeout, stateTransferTimeout, sweepInterval
    }
}
