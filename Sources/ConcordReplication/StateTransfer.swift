import Logging

/// How a starting node fills itself from its peers before it reports ready (shared by `sync` and `ring`).
enum StateTransfer {
    /// How a state transfer ended, for the log line and for tests.
    struct Outcome: Sendable {
        /// The peers whose state was copied.
        var sources: [String]
        /// Records received (before last-writer-wins merging).
        var recordCount: Int
        /// Whether the search ran out of time with peers still unreachable.
        var timedOut: Bool
    }

    /// How long `sync` keeps merging other peers' answers after the first ready peer's: a write made on one peer
    /// while this node was down may not have reached the others yet, and its queue for this node is gone if this
    /// node came back at a new address; the union of the peers that answer promptly has it.
    static let mergeGrace: Duration = .milliseconds(250)

    /// Asks every peer for the records this node should hold. `sync` needs one ready peer (each holds all), then
    /// merges whatever the others answer within ``mergeGrace``; `ring` needs every peer (each holds a part). Peers
    /// that answer while still starting count as answered: when all peers are starting together nobody has
    /// anything to copy, and the node starts empty. Peers that never answer are waited for until `deadline`; then
    /// the node starts with what it got.
    static func run(
        node: ReplicationNode,
        replica: LocalReplica,
        needsEveryPeer: Bool,
        deadline: Duration,
        logger: Logger
    ) async -> Outcome {
        let peers = node.peerIDs
        guard !peers.isEmpty else { return Outcome(sources: [], recordCount: 0, timedOut: false) }
        enum Answer: Sendable {
            case response(peer: String, PeerResponse)
            case failed(peer: String, any Error)
            case deadline
            case graceOver
        }
        return await withTaskGroup(of: Answer.self) { group in
            for peer in peers {
                group.addTask {
                    do { return .response(peer: peer, try await node.requestState(from: peer)) } catch {
                        return .failed(peer: peer, error)
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return .deadline
            }
            var outcome = Outcome(sources: [], recordCount: 0, timedOut: false)
            var pending = Set(peers)
            var graceStarted = false
            while let answer = await group.next() {
                switch answer {
                case .response(let peer, let response):
                    replica.apply(response.records)
                    outcome.recordCount += response.records.count
                    pending.remove(peer)
                    if response.ready { outcome.sources.append(peer) }
                case .failed(let peer, let error):
                    // A lost connection or a timeout: try once more while time remains.
                    logger.debug("state transfer from \(peer) failed: \(error)")
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(100))
                        do { return .response(peer: peer, try await node.requestState(from: peer)) } catch {
                            return .failed(peer: peer, error)
                        }
                    }
                    continue
                case .deadline:
                    outcome.timedOut = true
                    logger.warning(
                        "state transfer gave up waiting for unreachable peers; starting with what it has",
                        metadata: ["unreachable": "\(pending.sorted())"])
                case .graceOver:
                    break
                }
                if outcome.timedOut || pending.isEmpty { break }
                if case .graceOver = answer { break }
                if !needsEveryPeer && !outcome.sources.isEmpty && !graceStarted {
                    graceStarted = true
                    group.addTask {
                        try? await Task.sleep(for: min(mergeGrace, deadline))
                        return .graceOver
                    }
                }
            }
            group.cancelAll()
            return outcome
        }
    }
}
