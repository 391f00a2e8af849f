import ConcordNetworking
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One member of a replication group: a listener that takes peers' writes and requests, and one ``PeerLink`` per
/// peer for this node's writes and requests. The peer list starts from configuration and can change at runtime.
final class ReplicationNode: Sendable {
    private struct State {
        var links: [String: PeerLink] = [:]
        var port: Int?
        var portWaiters: [CheckedContinuation<Int, any Error>] = []
        var failure: (any Error)?
    }

    let configuration: ReplicationConfiguration
    let statistics: ReplicationStatistics
    private let handler: any ReplicaHandler
    private let onRemoteApply: RemoteApplyObserver?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())
    private let linkStarts: AsyncStream<PeerLink>
    private let linkStarter: AsyncStream<PeerLink>.Continuation

    init(
        configuration: ReplicationConfiguration,
        handler: any ReplicaHandler,
        eventLoopGroup: any EventLoopGroup,
        onRemoteApply: RemoteApplyObserver? = nil,
        logger: Logger
    ) {
        self.onRemoteApply = onRemoteApply
        self.configuration = configuration
        self.statistics = ReplicationStatistics(nodeID: configuration.nodeID)
        self.handler = handler
        self.eventLoopGroup = eventLoopGroup
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        self.logger = logger
        (linkStarts, linkStarter) = AsyncStream.makeStream(of: PeerLink.self)
        for peer in configuration.peers where peer.id != configuration.nodeID { addPeer(peer) }
    }

    var nodeID: String { configuration.nodeID }

    /// The ids of the current peers, sorted.
    var peerIDs: [String] { state.withLock { $0.links.keys.sorted() } }

    var peers: [ReplicationPeer] { state.withLock { $0.links.values.map(\.peer) }.sorted { $0.id < $1.id } }

    /// Adds a peer (or replaces one with the same id at a new address). Its link starts when the node runs.
    func addPeer(_ peer: ReplicationPeer) {
        guard peer.id != nodeID, state.withLock({ $0.links[peer.id]?.peer }) != peer else { return }
        let link = PeerLink(
            peer: peer, nodeID: nodeID, configuration: configuration, statistics: statistics,
            fullPushRecords: { [handler] in handler.records(forPeer: $0) }, logger: logger)
        let replaced = state.withLock { state in
            defer { state.links[peer.id] = link }
            return state.links[peer.id]
        }
        replaced?.stop()
        linkStarter.yield(link)
        logger.info("replication peer added", metadata: ["peer": "\(peer)"])
    }

    /// Removes a peer: its link closes and its queued writes are dropped.
    func removePeer(id: String) {
        guard let link = state.withLock({ $0.links.removeValue(forKey: id) }) else { return }
        link.stop()
        logger.info("replication peer removed", metadata: ["peer": "\(link.peer)"])
    }

    /// Queues `record` for each of `peerIDs` (unknown ids are skipped).
    func send(_ record: ReplicationRecord, to peerIDs: some Sequence<String>) async {
        let links = state.withLock { state in peerIDs.compactMap { state.links[$0] } }
        for link in links { await link.enqueue(record) }
    }

    /// Queues `record` for every peer.
    func broadcast(_ record: ReplicationRecord) async {
        let links = state.withLock { Array($0.links.values) }
        for link in links { await link.enqueue(record) }
    }

    /// Asks `peerID` for every record this node should hold.
    func requestState(from peerID: String) async throws -> PeerResponse {
        try await link(peerID).request { .stateRequest(requestID: $0) }
    }

    /// Asks `peerID` for the records it has among `ids`.
    func fetch(ids: [String], from peerID: String) async throws -> PeerResponse {
        try await link(peerID).request { .fetchRequest(requestID: $0, ids: ids) }
    }

    /// Asks `peerID` for the live sessions of `userID` it holds.
    func userQuery(_ userID: String, from peerID: String) async throws -> PeerResponse {
        try await link(peerID).request { .userQuery(requestID: $0, userID: userID) }
    }

    /// Writes waiting for `peerID` (0 for an unknown peer).
    func queuedCount(for peerID: String) -> Int {
        state.withLock { $0.links[peerID] }?.queuedCount ?? 0
    }

    func isConnected(to peerID: String) -> Bool {
        state.withLock { $0.links[peerID] }?.isConnected ?? false
    }

    /// Asks the connected ones of `peers` at once and gathers their records; a peer that does not answer within
    /// `timeout` is left out.
    func gather(
        from peers: [String], timeout: Duration,
        _ request: @escaping @Sendable (String) async throws -> PeerResponse
    ) async -> [ReplicationRecord] {
        await withTaskGroup(of: [ReplicationRecord].self) { group in
            for peer in peers where isConnected(to: peer) {
                group.addTask { await withTimeout(timeout) { try? await request(peer).records } ?? [] }
            }
            return await group.reduce(into: []) { $0.append(contentsOf: $1) }
        }
    }

    private func link(_ peerID: String) throws -> PeerLink {
        guard let link = state.withLock({ $0.links[peerID] }) else { throw ReplicationRequestError.unknownPeer(peerID) }
        return link
    }

    /// The port the listener is bound to, once it is (waits for `run()` to bind it).
    func listeningPort() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let result: Result<Int, any Error>? = state.withLock { state in
                if let port = state.port { return .success(port) }
                if let failure = state.failure { return .failure(failure) }
                state.portWaiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(with: result) }
        }
    }

    /// Records the bound port (or why binding failed) and wakes `listeningPort()` callers.
    private func publishBinding(_ result: Result<Int, any Error>) {
        let waiters = state.withLock { state in
            switch result {
            case .success(let port): state.port = port
            case .failure(let error): state.failure = error
            }
            defer { state.portWaiters = [] }
            return state.portWaiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// Listens and runs every peer link until cancelled (or graceful shutdown).
    func run() async throws {
        let server: NIOAsyncChannel<InboundConnection, Never>
        do {
            let configuration = configuration
            let statistics = statistics
            // Paused, not spinning, when the process is out of descriptors (see ``AcceptPauseHandler``).
            let alarm = LocalResourceAlarm(
                counter: Counter(label: "concord_replication_local_resource_failures_total", dimensions: [("node", configuration.nodeID)]),
                logger: logger)
            server = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer(AcceptPauseHandler.installer(alarm: alarm, accepting: "a replication peer connection"))
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // The address is read now: by the time the connection is served its socket may be closed,
                        // and the log line said "from unknown".
                        InboundConnection(
                            channel: try ReplicationChannel.configure(
                                channel, configuration: configuration, statistics: statistics, accepted: true),
                            remote: channel.remoteAddress.map { "\($0)" } ?? "unknown")
                    }
                }
        } catch {
            publishBinding(.failure(error))
            logger.error("replication listener could not bind \(configuration.host):\(configuration.port): \(error)")
            throw error
        }
        let port = server.channel.localAddress?.port ?? configuration.port
        publishBinding(.success(port))
        logger.info("replication listening on \(configuration.host):\(port)")

        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    try await server.executeThenClose { connections in
                        try await withThrowingDiscardingTaskGroup { connectionGroup in
                            for try await connection in connections {
                                connectionGroup.addTask { await self.serveInbound(connection) }
                            }
                        }
                    }
                }
                for await link in self.linkStarts {
                    group.addTask { await link.run(eventLoopGroup: self.eventLoopGroup) }
                }
                group.cancelAll()
            }
        }
        for link in state.withLock({ Array($0.links.values) }) { link.stop() }
    }

    /// A connection the listener accepted, and where it came from.
    struct InboundConnection: Sendable {
        let channel: NIOAsyncChannel<ReplicationMessage, ReplicationMessage>
        let remote: String
    }

    /// Serves one connection a peer opened: its hello, then its writes and requests.
    private func serveInbound(_ connection: InboundConnection) async {
        let remote = connection.remote
        var peerID = "not introduced"
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var messages = inbound.makeAsyncIterator()
                guard let first = try await messages.next() else {
                    throw ReplicationProtocolError.unexpectedMessage(
                        "no hello: it closed, or sent none within \(configuration.helloTimeout) (HelloDeadlineHandler)")
                }
                let helloID = try ReplicationHelloProof.admit(first, secret: configuration.sharedSecret)
                peerID = helloID
                while let message = try await messages.next() {
                    switch message {
                    case .records(let records):
                        let changed = handler.applyFromPeer(records, peerID: helloID)
                        statistics.recordApplied(changed.count)
                        if let onRemoteApply, !changed.isEmpty { onRemoteApply(changed) }
                    case .stateRequest(let requestID):
                        let ready = handler.isReady
                        try await respond(
                            requestID: requestID, ready: ready, records: handler.records(forPeer: helloID),
                            outbound: outbound)
                    case .fetchRequest(let requestID, let ids):
                        try await respond(
                            requestID: requestID, ready: handler.isReady, records: handler.records(ids: ids),
                            outbound: outbound)
                    case .userQuery(let requestID, let userID):
                        try await respond(
                            requestID: requestID, ready: handler.isReady, records: handler.records(forUser: userID),
                            outbound: outbound)
                    case .hello, .provenHello, .response:
                        throw ReplicationProtocolError.unexpectedMessage("\(message.kindName) from a calling peer")
                    }
                }
            }
        } catch let error as ReplicationProtocolError {
            cutOff(remote: remote, peerID: peerID, reason: "\(error)")
        } catch let error as ByteToMessageDecoderError.PayloadTooLargeError {
            cutOff(remote: remote, peerID: peerID, reason: "\(error)")
        } catch {
            logger.debug("replication connection from \(remote) (\(peerID)) ended: \(error)")
        }
    }

    private func cutOff(remote: String, peerID: String, reason: String) {
        statistics.recordPeerCutOff()
        logger.warning("closing replication connection from \(remote) (\(peerID)): \(reason)")
    }

    private func respond(
        requestID: UInt64,
        ready: Bool,
        records: [ReplicationRecord],
        outbound: NIOAsyncChannelOutboundWriter<ReplicationMessage>
    ) async throws {
        let chunks = records.chunked(maximumRecords: configuration.batchRecords, maximumBytes: configuration.batchBytes)
        if chunks.isEmpty {
            try await outbound.write(.response(requestID: requestID, ready: ready, records: [], isLast: true))
            return
        }
        for (index, chunk) in chunks.enumerated() {
            try await outbound.write(
                .response(requestID: requestID, ready: ready, records: chunk, isLast: index == chunks.count - 1))
        }
    }
}

extension ReplicationMessage {
    /// The message's name for log lines (never its contents).
    var kindName: String {
        switch self {
        case .hello: "hello"
        case .provenHello: "proven hello"
        case .records: "records"
        case .stateRequest: "state request"
        case .fetchRequest: "fetch request"
        case .userQuery: "user query"
        case .response: "response"
        }
    }
}
