import ConcordSessions
import Logging
import NIOCore
import ServiceLifecycle

/// The parts every replicated store has: this node's copy, its peer transport, and its readiness. The `sync` and
/// `ring` stores differ only in their ``ReplicaHandler`` and in where they send writes.
public final class ReplicationMember: Sendable {
    /// Whether the start-up state transfer is done; `/ready` should report it.
    public let readiness = ReplicationReadiness()
    let replica: LocalReplica
    let node: ReplicationNode
    let logger: Logger

    init(
        configuration: ReplicationConfiguration,
        wallClock: SessionWallClock,
        eventLoopGroup: any EventLoopGroup,
        onRemoteApply: RemoteApplyObserver?,
        logger: Logger,
        makeHandler: (LocalReplica, ReplicationReadiness) -> any ReplicaHandler
    ) {
        let replica = LocalReplica(
            nodeID: configuration.nodeID, wallClock: wallClock,
            maximumSessionBytes: configuration.maximumSessionBytes,
            tombstoneLifetime: configuration.tombstoneLifetime)
        self.replica = replica
        self.logger = logger
        self.node = ReplicationNode(
            configuration: configuration, handler: makeHandler(replica, readiness),
            eventLoopGroup: eventLoopGroup, onRemoteApply: onRemoteApply, logger: logger)
    }

    var configuration: ReplicationConfiguration { node.configuration }

    /// Runs the transport, the start-up state transfer (then marks ready), the expiry sweep (followed by
    /// `afterSweep`), and `alongside`, until cancelled or graceful shutdown.
    func run(
        strategy: String,
        needsEveryPeer: Bool,
        afterSweep: @escaping @Sendable () -> Void = {},
        alongside: [@Sendable () async throws -> Void] = []
    ) async throws {
        defer { readiness.markStopped(ReplicationServiceError.stoppedBeforeReady(node: configuration.nodeID)) }
        do {
            try await runParts(
                strategy: strategy, needsEveryPeer: needsEveryPeer, afterSweep: afterSweep, alongside: alongside)
        } catch is CancellationError where Task.isShuttingDownGracefully {
            // A graceful shutdown cancels the parts; that is a clean stop, not a failure of the service.
        } catch {
            readiness.markStopped(error)
            throw error
        }
    }

    private func runParts(
        strategy: String,
        needsEveryPeer: Bool,
        afterSweep: @escaping @Sendable () -> Void,
        alongside: [@Sendable () async throws -> Void]
    ) async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.node.run() }
                group.addTask {
                    // Ready means listening too: a node that cannot bind its port never reports ready.
                    _ = try await self.node.listeningPort()
                    await self.transferState(strategy: strategy, needsEveryPeer: needsEveryPeer)
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: self.configuration.sweepInterval)
                        self.replica.sweep()
                        afterSweep()
                    }
                }
                for task in alongside { group.addTask { try await task() } }
            }
        }
    }

    private func transferState(strategy: String, needsEveryPeer: Bool) async {
        let start = ContinuousClock.now
        let outcome = await StateTransfer.run(
            node: node, replica: replica, needsEveryPeer: needsEveryPeer,
            deadline: configuration.stateTransferTimeout, logger: logger)
        guard !Task.isCancelled else { return }
        readiness.markReady()
        logger.info(
            "\(strategy) replication ready",
            metadata: [
                "copied_from": "\(outcome.sources)", "records": "\(outcome.recordCount)",
                "took": "\(ContinuousClock.now - start)",
            ])
    }
}
