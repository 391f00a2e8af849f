import ConcordNetworking
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The answer to a state-transfer or read-through request.
struct PeerResponse: Sendable {
    /// Whether the peer had finished its own state transfer when it answered.
    var ready: Bool
    var records: [ReplicationRecord]
}

/// This node's outgoing connection to one peer: it connects (and reconnects with backoff), says hello, then sends
/// the peer's queued writes in batches and this node's requests, and reads the peer's answers.
///
/// Writes wait in a ``PeerQueue`` while the peer is slow or away; the socket's writability holds the writer back
/// (backpressure through `NIOAsyncChannelOutboundWriter`), and a full queue holds back the store's writers.
final class PeerLink: Sendable {
    private struct PendingRequest {
        var continuation: CheckedContinuation<PeerResponse, any Error>
        var message: ReplicationMessage
        /// Whether the request went out on the current connection (so losing the connection loses the answer).
        var sent = false
        var response = PeerResponse(ready: false, records: [])
    }

    private struct State {
        var queue: PeerQueue
        /// Rings the connected writer when there is work; `nil` while disconnected.
        var doorbell: AsyncStream<Void>.Continuation?
        var channel: (any Channel)?
        var isStopped = false
        var requests: [UInt64: PendingRequest] = [:]
        var unsentRequests: [UInt64] = []
        var nextRequestID: UInt64 = 1
    }

    private enum WriterWork {
        case idle
        /// A request was cancelled after it was queued.
        case skip
        case message(ReplicationMessage)
        case batch([ReplicationRecord])
        case fullPush
    }

    let peer: ReplicationPeer
    private let nodeID: String
    private let configuration: ReplicationConfiguration
    private let statistics: ReplicationStatistics
    private let fullPushRecords: @Sendable (String) -> [ReplicationRecord]
    private let logger: Logger
    private let state: Mutex<State>

    /// - Parameter fullPushRecords: everything the peer with the given id should hold, sent when its queue
    ///   overflowed.
    init(
        peer: ReplicationPeer,
        nodeID: String,
        configuration: ReplicationConfiguration,
        statistics: ReplicationStatistics,
        fullPushRecords: @escaping @Sendable (String) -> [ReplicationRecord],
        logger: Logger
    ) {
        self.peer = peer
        self.nodeID = nodeID
        self.configuration = configuration
        self.statistics = statistics
        self.fullPushRecords = fullPushRecords
        var logger = logger
        logger[metadataKey: "peer"] = "\(peer)"
        self.logger = logger
        self.state = Mutex(State(queue: PeerQueue(capacity: configuration.maximumQueuedRecords)))
    }

    var isConnected: Bool { state.withLock { $0.doorbell != nil } }

    /// Writes waiting for this peer.
    var queuedCount: Int { state.withLock { $0.queue.count } }

    // MARK: Writes

    /// Queues `record` for the peer. When the peer is connected and its queue is full, waits (up to
    /// ``ReplicationConfiguration/enqueueTimeout``) for the writer to make room; after that, or when the peer is
    /// away, the queue is dropped and the peer gets a full push instead, so a dead peer never blocks writers.
    func enqueue(_ record: ReplicationRecord) async {
        let deadline = ContinuousClock.now.advanced(by: configuration.enqueueTimeout)
        while true {
            let (result, connected) = state.withLock { state in
                let result = state.queue.enqueue(record)
                if result == .queued { state.doorbell?.yield() }
                return (result, state.doorbell != nil)
            }
            if result == .queued { return }
            if !connected || ContinuousClock.now >= deadline || Task.isCancelled {
                state.withLock { state in
                    state.queue.overflow()
                    state.doorbell?.yield()
                }
                logger.warning("replication queue full; dropping it and sending the peer a full state push instead")
                return
            }
            // Backpressure: the writer drains a frame in well under a millisecond on a healthy link.
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    // MARK: Requests

    /// Sends a request built from a fresh request id and waits for the whole answer (bounded by
    /// ``ReplicationConfiguration/requestTimeout``). Waits for the connection if the peer is not connected yet.
    func request(_ makeMessage: @escaping @Sendable (UInt64) -> ReplicationMessage) async throws -> PeerResponse {
        let requestID = state.withLock { state in
            defer { state.nextRequestID += 1 }
            return state.nextRequestID
        }
        let timeout = configuration.requestTimeout
        return try await withThrowingTaskGroup(of: PeerResponse.self) { group in
            group.addTask { try await self.awaitResponse(requestID: requestID, message: makeMessage(requestID)) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw ReplicationRequestError.timedOut(peer: self.peer.id, after: timeout)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func awaitResponse(requestID: UInt64, message: ReplicationMessage) async throws -> PeerResponse {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let refused: (any Error)? = state.withLock { state in
                    if state.isStopped { return ReplicationRequestError.peerRemoved(peer: peer.id) }
                    if Task.isCancelled { return CancellationError() }
                    state.requests[requestID] = PendingRequest(continuation: continuation, message: message)
                    state.unsentRequests.append(requestID)
                    state.doorbell?.yield()
                    return nil
                }
                if let refused { continuation.resume(throwing: refused) }
            }
        } onCancel: {
            let pending = state.withLock { state in
                state.unsentRequests.removeAll { $0 == requestID }
                return state.requests.removeValue(forKey: requestID)
            }
            pending?.continuation.resume(throwing: CancellationError())
        }
    }

    private func receive(_ message: ReplicationMessage) throws(ReplicationProtocolError) {
        guard case .response(let requestID, let ready, let records, let isLast) = message else {
            throw .unexpectedMessage("a peer may only send responses on a connection this node opened")
        }
        let finished: PendingRequest? = state.withLock { state in
            // An answer to a request that timed out or was cancelled is dropped.
            guard var pending = state.requests[requestID] else { return nil }
            pending.response.ready = ready
            pending.response.records.append(contentsOf: records)
            if isLast {
                state.requests[requestID] = nil
                return pending
            }
            state.requests[requestID] = pending
            return nil
        }
        finished.map { $0.continuation.resume(returning: $0.response) }
    }

    // MARK: Connection

    /// Connects and serves the connection, reconnecting with exponential backoff, until stopped or cancelled.
    func run(eventLoopGroup: any EventLoopGroup) async {
        var delay = configuration.initialReconnectDelay
        var failuresInARow = 0
        while !Task.isCancelled && !state.withLock({ $0.isStopped }) {
            do {
                let channel = try await connect(eventLoopGroup: eventLoopGroup)
                if failuresInARow > 0 { logger.info("replication peer reachable again") }
                failuresInARow = 0
                delay = configuration.initialReconnectDelay
                try await serve(channel)
                logger.debug("replication connection closed by peer")
            } catch let error as ReplicationProtocolError {
                statistics.recordPeerCutOff()
                logger.warning("closing replication connection: \(error)")
            } catch let error as ByteToMessageDecoderError.PayloadTooLargeError {
                statistics.recordPeerCutOff()
                logger.warning("closing replication connection: \(error)")
            } catch {
                failuresInARow += 1
                // One line when a peer goes away, not one per retry.
                if failuresInARow == 1 && !Task.isCancelled {
                    // A warning: until it is back, this node's writes do not reach it (it gets a full push then).
                    logger.warning("replication peer unreachable, retrying with backoff: \(ConnectFailure.describe(error))")
                }
            }
            disconnected()
            if Task.isCancelled || state.withLock({ $0.isStopped }) { break }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.maximumReconnectDelay)
        }
        stop()
    }

    /// Stops the link: closes the connection and fails waiting requests. Queued writes are dropped.
    func stop() {
        let (channel, requests) = state.withLock { state in
            state.isStopped = true
            state.doorbell?.finish()
            state.doorbell = nil
            state.unsentRequests = []
            defer { state.requests = [:] }
            return (state.channel, state.requests.values)
        }
        channel?.close(promise: nil)
        for request in requests {
            request.continuation.resume(throwing: ReplicationRequestError.peerRemoved(peer: peer.id))
        }
    }

    private func connect(
        eventLoopGroup: any EventLoopGroup
    ) async throws -> NIOAsyncChannel<ReplicationMessage, ReplicationMessage> {
        let configuration = configuration
        let statistics = statistics
        return try await ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(.milliseconds(Int64(configuration.connectTimeout.nonNegativeMilliseconds)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: peer.host, port: peer.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try ReplicationChannel.configure(channel, configuration: configuration, statistics: statistics)
                }
            }
    }

    private func serve(_ connection: NIOAsyncChannel<ReplicationMessage, ReplicationMessage>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ReplicationHelloProof.hello(nodeID: nodeID, secret: configuration.sharedSecret))
            let (doorbell, ringer) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let stopped = state.withLock { state in
                guard !state.isStopped else { return true }
                state.doorbell = ringer
                state.channel = connection.channel
                ringer.yield()
                return false
            }
            guard !stopped else { return }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound { try self.receive(message) }
                }
                group.addTask {
                    for await _ in doorbell { try await self.drain(into: outbound) }
                }
                // Either side ending ends the connection: the reader on EOF or bad input, the writer on stop.
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// Sends everything that is waiting: a full push if one is due, then write batches, then requests. Writes go
    /// before requests so that a read-through sent after a write on this link sees that write (read-your-writes
    /// through a node that does not hold the session).
    private func drain(into outbound: NIOAsyncChannelOutboundWriter<ReplicationMessage>) async throws {
        while true {
            let work: WriterWork = state.withLock { state in
                if state.queue.takeFullPush() { return .fullPush }
                let batch = state.queue.takeBatch(
                    maximumRecords: configuration.batchRecords, maximumBytes: configuration.batchBytes)
                if !batch.isEmpty { return .batch(batch) }
                guard !state.unsentRequests.isEmpty else { return .idle }
                let requestID = state.unsentRequests.removeFirst()
                guard state.requests[requestID] != nil else { return .skip }
                state.requests[requestID]!.sent = true
                return .message(state.requests[requestID]!.message)
            }
            switch work {
            case .idle:
                return
            case .skip:
                continue
            case .message(let message):
                try await outbound.write(message)
            case .batch(let batch):
                do {
                    try await outbound.write(.records(batch))
                } catch {
                    state.withLock { $0.queue.requeue(batch) }
                    throw error
                }
            case .fullPush:
                let records = fullPushRecords(peer.id)
                logger.info("sending a full state push of \(records.count) sessions")
                for chunk in records.chunked(
                    maximumRecords: configuration.batchRecords, maximumBytes: configuration.batchBytes)
                {
                    try await outbound.write(.records(chunk))
                }
            }
        }
    }

    private func disconnected() {
        let lost = state.withLock { state in
            state.doorbell?.finish()
            state.doorbell = nil
            state.channel = nil
            // Requests already sent lost their answer with the connection; unsent ones wait for the next one.
            let lostIDs = state.requests.filter { $0.value.sent }.map(\.key)
            return lostIDs.compactMap { state.requests.removeValue(forKey: $0) }
        }
        for request in lost {
            request.continuation.resume(throwing: ReplicationRequestError.connectionLost(peer: peer.id))
        }
    }
}
