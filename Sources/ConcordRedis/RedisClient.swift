import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A Redis client for one server or a Redis Cluster: pooled, pipelined connections; commands are routed by their
/// key's slot in a cluster, following MOVED/ASK redirections and refreshing the slot table (`CLUSTER SHARDS`,
/// or `CLUSTER SLOTS` on servers before Redis 7).
///
/// Error replies are thrown as ``RedisClientError/server(_:)``; everything else that goes wrong (refused, closed,
/// timed out, backing off) is another ``RedisClientError``. Nothing waits longer than the configured timeouts.
///
/// Counts through swift-metrics: `concord_redis_commands_total`, `concord_redis_command_failures_total{kind}`,
/// `concord_redis_reconnects_total` and `concord_redis_pool_connections{node}` (docs/stores-redis.md).
public final class RedisClient: Sendable {
    public let configuration: RedisClientConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let metrics: RedisClientMetrics
    private let state: Mutex<State>
    /// The one pool of a single-server client, so a command takes no lock or lookup to find it.
    private let standalonePool: RedisConnectionPool?
    /// Shared by every connection (`rediss://`): certificates are read once, at init.
    private let tlsContext: NIOSSLContext?
    /// With sentinels: listens for their `+switch-master` announcements and asks them every
    /// `sentinelPollInterval` which server is the primary, so a switchover moves this client's connections at once
    /// instead of when the old primary is demoted (its writes until then would be lost).
    private let primaryWatch: Task<Void, Never>?

    private struct State: Sendable {
        var pools: [RedisEndpoint: RedisConnectionPool] = [:]
        var topology = RedisClusterTopology()
        /// The one refresh in flight; concurrent commands wait for it instead of starting their own.
        var refresh: Task<RedisClusterTopology, any Error>?
        var isShutDown = false
    }

    /// - Parameter metricsFactory: where the counters go; the process-wide `MetricsSystem` by default.
    public init(
        configuration: RedisClientConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "concord.redis"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(RedisClientError) {
        guard !configuration.endpoints.isEmpty else { throw .invalidConfiguration("no Redis endpoint given") }
        if configuration.isCluster, let endpoint = configuration.endpoints.first(where: { $0.database != 0 }) {
            throw .invalidConfiguration("Redis Cluster has only database 0, \(endpoint) asks for another")
        }
        // Cluster nodes learnt from the slot table inherit the seeds' TLS settings, so the seeds must agree.
        guard Set(configuration.endpoints.map(\.tls)).count == 1 else {
            throw .invalidConfiguration("the Redis URLs mix redis:// and rediss:// or differ in TLS settings")
        }
        let tlsContext = try configuration.endpoints[0].tls?.makeContext()
        self.tlsContext = tlsContext
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.metrics = RedisClientMetrics(factory: metricsFactory)
        var state = State()
        if configuration.isCluster {
            self.standalonePool = nil
        } else {
            let endpoint = configuration.endpoints[0]
            if let sentinel = configuration.sentinel, sentinel.sentinels.isEmpty {
                throw .invalidConfiguration("no sentinel given for master '\(sentinel.masterName)'")
            }
            // One TLS context serves the sentinels and the primary (rediss-sentinel:// gives both the same settings).
            if let sentinel = configuration.sentinel, sentinel.sentinels.contains(where: { $0.tls != endpoint.tls }) {
                throw .invalidConfiguration("the sentinels and master '\(sentinel.masterName)' differ in TLS settings")
            }
            let pool = RedisConnectionPool(
                endpoint: endpoint, configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger,
                metrics: metrics, tlsContext: tlsContext,
                locator: configuration.sentinel.map { RedisSentinelLocator(sentinel: $0, primary: endpoint, configuration: configuration, tlsContext: tlsContext) })
            state.pools[endpoint] = pool
            self.standalonePool = pool
        }
        self.state = Mutex(state)
        if configuration.sentinel != nil, let pool = standalonePool, let locator = pool.locator {
            let interval = configuration.sentinelPollInterval
            let subscribes = configuration.sentinelSubscription
            primaryWatch = Task {
                await withDiscardingTaskGroup { group in
                    if subscribes {
                        group.addTask {
                            await locator.watchSwitches(eventLoopGroup: eventLoopGroup) { Task { await pool.followPrimary() } }
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: interval)
                            guard !Task.isCancelled else { return }
                            await pool.followPrimary()
                        }
                    }
                }
            }
        } else {
            primaryWatch = nil
        }
    }

    /// Sends `command` and returns its reply.
    /// - Throws: ``RedisClientError``; error replies as ``RedisClientError/server(_:)``.
    public func send(_ command: RedisCommand) async throws(RedisClientError) -> RESPValue {
        try await execute(routingKey: command.routingKey) { connection, asking throws(RedisClientError) in
            asking ? try await connection.send([.asking(), command])[1] : try await connection.send(command)
        }
    }

    /// Runs `operation` on a connection to the node that serves `routingKey` (in a cluster, following MOVED/ASK;
    /// `asking` tells the operation to prefix `ASKING`), and throws error replies. Counts one command, and its
    /// failure by kind.
    func execute(
        routingKey: ByteBuffer?,
        _ operation: (RedisConnection, _ asking: Bool) async throws(RedisClientError) -> RESPValue
    ) async throws(RedisClientError) -> RESPValue {
        metrics.commands.increment()
        do throws(RedisClientError) {
            let reply: RESPValue
            if let standalonePool {
                // After shutdown() the pool is closed and fails with .shutDown itself.
                let connection = try await standalonePool.connection()
                reply = try await operation(connection, false)
                if configuration.sentinel != nil, case .error(let message) = reply, message.hasPrefix("READONLY") {
                    // The primary was demoted while this connection stayed open: drop it (before answering, so the
                    // caller's next command cannot get it again), and the next command asks the sentinels.
                    await connection.closeAndWait()
                }
            } else {
                reply = try await executeInCluster(routingKey: routingKey, operation)
            }
            if case .error(let message) = reply { throw .server(message) }
            return reply
        } catch {
            metrics.failed(error)
            throw error
        }
    }

    deinit {
        primaryWatch?.cancel()
    }

    /// Closes every connection. Later commands fail with ``RedisClientError/shutDown``.
    public func shutdown() {
        primaryWatch?.cancel()
        let pools = state.withLock { state in
            state.isShutDown = true
            state.refresh?.cancel()
            return Array(state.pools.values)
        }
        for pool in pools { pool.close() }
    }

    private func pool(for endpoint: RedisEndpoint) throws(RedisClientError) -> RedisConnectionPool {
        let pool = state.withLock { state -> RedisConnectionPool? in
            guard !state.isShutDown else { return nil }
            if let pool = state.pools[endpoint] { return pool }
            let pool = RedisConnectionPool(
                endpoint: endpoint, configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger,
                metrics: metrics, tlsContext: tlsContext)
            state.pools[endpoint] = pool
            return pool
        }
        guard let pool else { throw RedisClientError.shutDown.notSent() }
        return pool
    }

    // MARK: Cluster

    private func executeInCluster(
        routingKey: ByteBuffer?,
        _ operation: (RedisConnection, _ asking: Bool) async throws(RedisClientError) -> RESPValue
    ) async throws(RedisClientError) -> RESPValue {
        let slot = routingKey.map { RedisClusterSlot.slot(forKey: $0) }
        var target: RedisEndpoint
        do {
            target = try await node(forSlot: slot)
        } catch {
            throw error.notSent()
        }
        var asking = false
        for _ in 0...configuration.maximumRedirections {
            let reply: RESPValue
            do {
                reply = try await operation(pool(for: target).connection(), asking)
            } catch {
                // The node may have failed over or left: learn the new layout for the next command.
                if !error.isServerError { startRefresh() }
                throw error
            }
            guard case .error(let message) = reply else { return reply }
            if let redirection = RedisClusterRedirection(errorMessage: message) {
                let host = redirection.host.isEmpty ? target.host : redirection.host
                target = target.sibling(host: host, port: redirection.port)
                asking = redirection.isAsk
                if !redirection.isAsk {
                    let node = target
                    state.withLock { $0.topology.assign(slot: redirection.slot, to: node) }
                    startRefresh()
                }
                continue
            }
            if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
                // A resharding or failover is under way; a short pause usually lets it settle.
                try? await Task.sleep(for: .milliseconds(20))
                asking = false
                continue
            }
            return reply
        }
        throw .tooManyRedirections(configuration.maximumRedirections)
    }

    /// The node for `slot` (any known node for keyless commands), loading the slot table first if needed.
    private func node(forSlot slot: Int?) async throws(RedisClientError) -> RedisEndpoint {
        var topology = state.withLock { $0.topology }
        if topology.isEmpty { topology = try await refreshTopology() }
        guard let slot else { return topology.nodes.first ?? configuration.endpoints[0] }
        return topology.node(forSlot: slot) ?? topology.nodes.first ?? configuration.endpoints[0]
    }

    private func startRefresh() {
        Task { [self] in _ = try? await refreshTopology() }
    }

    /// Asks the known nodes, then the configured seeds, for the slot table until one answers; single-flight.
    @discardableResult
    func refreshTopology() async throws(RedisClientError) -> RedisClusterTopology {
        let task = state.withLock { state -> Task<RedisClusterTopology, any Error> in
            if let refresh = state.refresh { return refresh }
            let candidates = state.topology.nodes + configuration.endpoints.filter { !state.topology.nodes.contains($0) }
            let refresh = Task { [self] in try await self.loadTopology(from: candidates) }
            state.refresh = refresh
            return refresh
        }
        do {
            let topology = try await task.value
            state.withLock { state in
                state.topology = topology
                state.refresh = nil
            }
            return topology
        } catch {
            state.withLock { $0.refresh = nil }
            throw error as? RedisClientError ?? .connectionFailed("\(error)")
        }
    }

    private func loadTopology(from candidates: [RedisEndpoint]) async throws(RedisClientError) -> RedisClusterTopology {
        var lastError = RedisClientError.connectionFailed("no cluster node known")
        for candidate in candidates {
            do throws(RedisClientError) {
                let topology = try await loadTopology(from: pool(for: candidate))
                logger.debug("redis cluster topology", metadata: ["nodes": "\(topology.nodes)"])
                return topology
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// `CLUSTER SHARDS` (Redis 7+); on an error reply (an older server, an ACL that denies it) or a reply that does
    /// not parse, `CLUSTER SLOTS` on the same node. Connection errors move on to the next node instead.
    private func loadTopology(from pool: RedisConnectionPool) async throws(RedisClientError) -> RedisClusterTopology {
        let shards = try await pool.send(.clusterShards())
        do throws(RedisClientError) {
            if case .error(let message) = shards { throw .server(message) }
            return try RedisClusterTopology(clusterShards: shards, seed: pool.endpoint)
        } catch {
            logger.debug("redis CLUSTER SHARDS not usable, asking CLUSTER SLOTS", metadata: ["error": "\(error)"])
        }
        let slots = try await pool.send(.clusterSlots())
        if case .error(let message) = slots { throw .server(message) }
        return try RedisClusterTopology(clusterSlots: slots, seed: pool.endpoint)
    }
}
