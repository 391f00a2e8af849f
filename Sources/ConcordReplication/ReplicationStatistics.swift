import Metrics
import Synchronization

/// Running totals of one node's replication traffic, readable at any time (benchmarks divide them by writes) and
/// mirrored to swift-metrics counters for `/metrics`.
public final class ReplicationStatistics: Sendable {
    private let bytesSentTotal = Atomic<Int>(0)
    private let framesSentTotal = Atomic<Int>(0)
    private let recordsAppliedTotal = Atomic<Int>(0)
    private let peersCutOffTotal = Atomic<Int>(0)
    private let missReadsSkippedTotal = Atomic<Int>(0)

    private let bytesCounter: Counter
    private let framesCounter: Counter
    private let appliedCounter: Counter
    private let cutOffCounter: Counter
    private let missReadsSkippedCounter: Counter

    init(nodeID: String) {
        let dimensions = [("node", nodeID)]
        bytesCounter = Counter(label: "concord_replication_bytes_sent_total", dimensions: dimensions)
        framesCounter = Counter(label: "concord_replication_frames_sent_total", dimensions: dimensions)
        appliedCounter = Counter(label: "concord_replication_records_applied_total", dimensions: dimensions)
        cutOffCounter = Counter(label: "concord_replication_peer_protocol_errors_total", dimensions: dimensions)
        missReadsSkippedCounter = Counter(label: "concord_replication_miss_reads_skipped_total", dimensions: dimensions)
    }

    /// Bytes of replication frames this node has written to peers (writes, hand-offs, requests and answers).
    public var bytesSent: Int { bytesSentTotal.load(ordering: .relaxed) }
    /// Replication frames this node has written.
    public var framesSent: Int { framesSentTotal.load(ordering: .relaxed) }
    /// Records received from peers that changed this node's copy.
    public var recordsApplied: Int { recordsAppliedTotal.load(ordering: .relaxed) }
    /// Peer connections closed because the peer broke the protocol (garbage, oversized or unexpected frames).
    public var peersCutOff: Int { peersCutOffTotal.load(ordering: .relaxed) }
    /// Loads of unknown sessions that did not ask the peers because enough such loads were asking already
    /// (`sync`'s read-through cap).
    public var missReadsSkipped: Int { missReadsSkippedTotal.load(ordering: .relaxed) }

    func recordFrameSent(bytes: Int) {
        bytesSentTotal.add(bytes, ordering: .relaxed)
        framesSentTotal.add(1, ordering: .relaxed)
        bytesCounter.increment(by: bytes)
        framesCounter.increment()
    }

    func recordApplied(_ count: Int) {
        guard count > 0 else { return }
        recordsAppliedTotal.add(count, ordering: .relaxed)
        appliedCounter.increment(by: count)
    }

    func recordPeerCutOff() {
        peersCutOffTotal.add(1, ordering: .relaxed)
        cutOffCounter.increment()
    }

    func recordMissReadSkipped() {
        missReadsSkippedTotal.add(1, ordering: .relaxed)
        missReadsSkippedCounter.increment()
    }
}
