import ConcordReplication
import ConcordSessions
import Logging
import Synchronization

/// The measurements behind `concord bench replication`, kept apart from the command-line parsing. Every cluster
/// runs in this process on loopback and is stopped before the next starts.
struct ReplicationBenchmark {
    enum Strategy: String, CaseIterable, Codable {
        case sync, ring
    }

    struct LagResult: Codable {
        var strategy: String
        var nodes: Int
        var targetRate: Int
        var achievedRate: Double
        var writes: Int
        var delivered: Int
        var p50Micros: Double
        var p99Micros: Double
        var maxMicros: Double
    }

    struct BytesResult: Codable {
        var strategy: String
        var nodes: Int
        var writes: Int
        var bytesPerWrite: Double
        var recordsPerNode: Double
    }

    struct RejoinResult: Codable {
        var strategy: String
        var nodes: Int
        var sessions: Int
        var recordsCopied: Int
        var readySeconds: Double
    }

    let payloadBytes: Int
    let logger: Logger

    // MARK: Clusters

    /// Running stores on loopback ports, fully peered.
    final class Cluster<Store: ReplicatedSessionStore>: Sendable {
        let make: @Sendable (ReplicationConfiguration) -> Store
        private let state = Mutex<(stores: [Store], tasks: [Task<Void, any Error>], peers: [ReplicationPeer])>(([], [], []))

        init(make: @escaping @Sendable (ReplicationConfiguration) -> Store) { self.make = make }

        var stores: [Store] { state.withLock { $0.stores } }
        var peers: [ReplicationPeer] { state.withLock { $0.peers } }

        static func configuration(_ id: String, port: Int = 0, peers: [ReplicationPeer] = []) -> ReplicationConfiguration {
            ReplicationConfiguration(
                nodeID: id, port: port, peers: peers, initialReconnectDelay: .milliseconds(10),
                maximumReconnectDelay: .milliseconds(100), requestTimeout: .seconds(30),
                stateTransferTimeout: .seconds(30))
        }

        func start(nodes: Int) async throws {
            for index in 0..<nodes {
                let store = make(Self.configuration("node-\(index)"))
                let task = Task { try await store.run() }
                let peer = ReplicationPeer(id: "node-\(index)", host: "127.0.0.1", port: try await store.listeningPort())
                state.withLock {
                    $0.stores.append(store)
                    $0.tasks.append(task)
                    $0.peers.append(peer)
                }
            }
            for store in stores {
                for peer in peers { store.addPeer(peer) }
                try await store.waitUntilReady()
            }
        }

        /// Stops node `index` and starts it again, empty, on the same port; returns the new store once it runs.
        func restart(_ index: Int) async -> Store {
            let (task, peers) = state.withLock { ($0.tasks[index], $0.peers) }
            task.cancel()
            _ = await task.result
            let store = make(
                Self.configuration(peers[index].id, port: peers[index].port, peers: peers.filter { $0 != peers[index] }))
            let restarted = Task { try await store.run() }
            state.withLock {
                $0.stores[index] = store
                $0.tasks[index] = restarted
            }
            return store
        }

        func stop() async {
            for task in state.withLock({ $0.tasks }) {
                task.cancel()
                _ = await task.result
            }
        }
    }

    func syncCluster(onRemoteApply: RemoteApplyObserver? = nil) -> Cluster<SyncSessionStore> {
        Cluster { [logger] in SyncSessionStore(configuration: $0, onRemoteApply: onRemoteApply, logger: logger) }
    }

    func ringCluster() -> Cluster<RingSessionStore> {
        Cluster { [logger] in
            RingSessionStore(
                configuration: .init(replication: $0, backups: 1, handoffGracePeriod: .milliseconds(200)),
                logger: logger)
        }
    }

    // MARK: Figures

    /// Node 0 of a `sync` cluster writes new sessions at `rate` for `seconds`; every other node notes when each
    /// arrives (the payload carries the instant it was written).
    func lag(nodes: Int, rate: Int, seconds: Double) async throws -> LagResult {
        let origin = ContinuousClock.now
        let lags = Mutex<[Int64]>([])
        let cluster = syncCluster { records in
            let now = Self.nanoseconds(since: origin)
            let arrived = records.compactMap { $0.payload.map { now - Self.stamp(in: $0) } }
            lags.withLock { $0.append(contentsOf: arrived) }
        }
        try await cluster.start(nodes: nodes)
        let writer = cluster.stores[0]
        let count = max(1, Int(Double(rate) * seconds))
        // Every other node observes each write once.
        let observed = cluster.stores.count - 1
        let started = ContinuousClock.now
        try await Self.paced(rate: rate, count: count) { index in
            _ = try await writer.save(
                StoredSession(id: "lag-\(index)", payload: payload(stamp: Self.nanoseconds(since: origin))),
                ttl: .seconds(600), expectedVersion: nil)
        }
        let elapsed = ContinuousClock.now - started
        _ = await Self.waitUntil(timeout: .seconds(10)) { lags.withLock { $0.count } >= count * observed }
        await cluster.stop()
        let sorted = lags.withLock { $0 }.sorted()
        return LagResult(
            strategy: "sync", nodes: nodes, targetRate: rate, achievedRate: Double(count) / elapsed.seconds,
            writes: count, delivered: sorted.count / max(1, observed),
            p50Micros: Self.percentile(sorted, 0.50), p99Micros: Self.percentile(sorted, 0.99),
            maxMicros: Double(sorted.last ?? 0) / 1_000)
    }

    /// Writes `writes` new sessions at `rate` through each session's owner (as the proxy routes them) and divides
    /// the replication bytes every node sent by the number of writes.
    func bytesPerWrite(strategy: Strategy, nodes: Int, writes: Int, rate: Int) async throws -> BytesResult {
        switch strategy {
        case .sync:
            let cluster = syncCluster()
            try await cluster.start(nodes: nodes)
            let stores = cluster.stores
            return try await measureBytes(cluster, strategy, writes: writes, rate: rate, copies: nodes) { _ in stores[0] }
        case .ring:
            let cluster = ringCluster()
            try await cluster.start(nodes: nodes)
            try await Task.sleep(for: .milliseconds(300))  // past the membership grace period: no read-throughs
            let stores = cluster.stores
            let byID = Dictionary(uniqueKeysWithValues: stores.map { ($0.configuration.replication.nodeID, $0) })
            return try await measureBytes(cluster, strategy, writes: writes, rate: rate, copies: 2) { id in
                byID[stores[0].holders(of: id)[0]]!
            }
        }
    }

    private func measureBytes<Store: ReplicatedSessionStore>(
        _ cluster: Cluster<Store>,
        _ strategy: Strategy,
        writes: Int,
        rate: Int,
        copies: Int,
        through route: (String) -> Store
    ) async throws -> BytesResult {
        let stores = cluster.stores
        func totalBytes() -> Int { stores.map(\.statistics.bytesSent).reduce(0, +) }
        func totalRecords() -> Int { stores.map(\.localRecordCount).reduce(0, +) }
        let before = totalBytes()
        try await Self.paced(rate: rate, count: writes) { index in
            let id = "bytes-\(index)"
            _ = try await route(id).save(
                StoredSession(id: id, payload: payload(stamp: 0)), ttl: .seconds(600), expectedVersion: nil)
        }
        _ = await Self.waitUntil(timeout: .seconds(20)) { totalRecords() >= writes * copies }
        let sent = totalBytes() - before
        let records = totalRecords()
        await cluster.stop()
        return BytesResult(
            strategy: strategy.rawValue, nodes: stores.count, writes: writes,
            bytesPerWrite: Double(sent) / Double(writes), recordsPerNode: Double(records) / Double(stores.count))
    }

    /// Fills a cluster with `sessions`, restarts one node empty, and times how long it takes to copy its state and
    /// report ready.
    func rejoin(strategy: Strategy, nodes: Int, sessions: Int) async throws -> RejoinResult {
        switch strategy {
        case .sync:
            let cluster = syncCluster()
            try await cluster.start(nodes: nodes)
            let writer = cluster.stores[0]
            return try await measureRejoin(cluster, strategy, sessions: sessions, copies: nodes) { _ in writer }
        case .ring:
            let cluster = ringCluster()
            try await cluster.start(nodes: nodes)
            try await Task.sleep(for: .milliseconds(300))
            let stores = cluster.stores
            let byID = Dictionary(uniqueKeysWithValues: stores.map { ($0.configuration.replication.nodeID, $0) })
            return try await measureRejoin(cluster, strategy, sessions: sessions, copies: 2) { id in
                byID[stores[0].holders(of: id)[0]]!
            }
        }
    }

    private func measureRejoin<Store: ReplicatedSessionStore>(
        _ cluster: Cluster<Store>,
        _ strategy: Strategy,
        sessions: Int,
        copies: Int,
        through route: (String) -> Store
    ) async throws -> RejoinResult {
        let body = payload(stamp: 0)
        for index in 0..<sessions {
            let id = "rejoin-\(index)"
            _ = try await route(id).save(StoredSession(id: id, payload: body), ttl: .seconds(600), expectedVersion: nil)
        }
        let filled = await Self.waitUntil(timeout: .seconds(60)) {
            cluster.stores.map(\.localRecordCount).reduce(0, +) >= sessions * copies
        }
        guard filled else { throw ReplicationBenchError("the cluster did not replicate \(sessions) sessions within 60 s") }
        let last = cluster.stores.count - 1
        let expected = cluster.stores[last].localRecordCount
        let started = ContinuousClock.now
        let restarted = await cluster.restart(last)
        try await restarted.waitUntilReady()
        let took = ContinuousClock.now - started
        let copied = restarted.localRecordCount
        await cluster.stop()
        guard copied == expected else {
            throw ReplicationBenchError("the restarted node holds \(copied) sessions, expected \(expected)")
        }
        return RejoinResult(
            strategy: strategy.rawValue, nodes: cluster.stores.count, sessions: sessions, recordsCopied: copied,
            readySeconds: took.seconds)
    }

    // MARK: Helpers

    /// A payload of `payloadBytes` whose first 8 bytes carry `stamp`.
    func payload(stamp: Int64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0x5A, count: max(8, payloadBytes))
        withUnsafeBytes(of: stamp.littleEndian) { for (index, byte) in $0.enumerated() { bytes[index] = byte } }
        return bytes
    }

    static func stamp(in payload: [UInt8]) -> Int64 {
        guard payload.count >= 8 else { return 0 }
        var value: Int64 = 0
        withUnsafeMutableBytes(of: &value) { for index in 0..<8 { $0[index] = payload[index] } }
        return Int64(littleEndian: value)
    }

    static func nanoseconds(since origin: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = (ContinuousClock.now - origin).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Calls `body` `count` times, spaced to `rate` per second (never sleeping when behind schedule).
    static func paced(rate: Int, count: Int, _ body: (Int) async throws -> Void) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<count {
            let due = start.advanced(by: .nanoseconds(Int64(index) * 1_000_000_000 / Int64(max(1, rate))))
            // Behind schedule the writer does not sleep, but still lets the replication tasks run, as a server's
            // request handlers would between requests.
            if clock.now < due { try await Task.sleep(until: due, clock: clock) } else { await Task.yield() }
            try await body(index)
        }
    }

    /// Polls every 5 ms until `condition` holds or `timeout` passes.
    static func waitUntil(timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    static func percentile(_ sorted: [Int64], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
        return Double(sorted[max(0, index)]) / 1_000
    }
}

struct ReplicationBenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
