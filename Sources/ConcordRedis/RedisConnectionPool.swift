import ConcordNetworking
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Up to `maximumConnectionsPerNode` pipelined connections to one Redis server, opened on demand and handed out
/// round-robin. A dead connection is reopened by the next command that lands on its slot; after a failed reopen
/// the slot waits (exponential backoff) and commands fail fast with ``RedisClientError/backingOff(_:)`` meanwhile,
/// so an outage costs callers one quick error each, never a queue or a hang. A connection closed because a command
/// went unanswered (a server that is stopped or hung still accepts connections) backs its slot off the same way,
/// and a reopen checks the server answers (`PING`): otherwise every command waited the whole command timeout.
final class RedisConnectionPool: Sendable {
    let endpoint: RedisEndpoint
    private let configuration: RedisClientConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let metrics: RedisClientMetrics
    /// `concord_redis_pool_connections{node}`: up when a connection opens, down when it closes.
    private let openConnections: Meter
    private let state: Mutex<RedisConnectionPoolState>
    private let isMultiLoop: Bool
    private let tlsContext: NIOSSLContext?
    /// With sentinels: each connect goes to the primary they name now (`endpoint` is only its template).
    let locator: RedisSentinelLocator?
    /// The node as logs name it.
    private let label: String
    private let localResources: LocalResourceAlarm

    init(
        endpoint: RedisEndpoint, configuration: RedisClientConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger,
        metrics: RedisClientMetrics, tlsContext: NIOSSLContext?, locator: RedisSentinelLocator? = nil
    ) {
        self.endpoint = endpoint
        self.tlsContext = tlsContext
        self.locator = locator
        self.label = locator?.label ?? endpoint.description
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.metrics = metrics
        self.openConnections = metrics.connections(node: locator?.label ?? "\(endpoint.host):\(endpoint.port)")
        self.localResources = LocalResourceAlarm(counter: metrics.localResourceFailures, logger: logger)
        let loops = eventLoopGroup.makeIterator().reduce(0) { count, _ in count + 1 }
        self.isMultiLoop = loops > 1
        self.state = Mutex(
            RedisConnectionPoolState(
                size: max(1, configuration.maximumConnectionsPerNode),
                backoff: configuration.reconnectBackoff,
                maximumBackoff: configuration.maximumReconnectBackoff,
                loops: loops))
    }

    /// A live connection: an open one, one being opened, or a new one. A caller running on one of the group's
    /// event loops gets a connection on that loop when there is one (or a free slot to open it in): its command is
    /// then written without a thread hand-off and its reply resumes it on the same thread — what a task preferring
    /// ``EventLoopTaskExecutor``, or any task when SwiftNIO's loops are the global executor, needs to pay no
    /// cross-thread wake-up per command. Its errors are ``RedisClientError/wasNotSent``: no command went out.
    func connection() async throws(RedisClientError) -> RedisConnection {
        do {
            return try await liveConnection()
        } catch {
            throw error.notSent()
        }
    }

    private func liveConnection() async throws(RedisClientError) -> RedisConnection {
        let eventLoopGroup = eventLoopGroup
        let local = localEventLoop()
        let decision = state.withLock {
            $0.next(now: .now, local: local, makePromise: { (local ?? eventLoopGroup.any()).makePromise() })
        }
        switch decision {
        case .use(let connection):
            return connection
        case .wait(let future):
            return try await Self.value(of: future)
        case .fail(let error):
            throw error
        case .connect(let slot, let promise, let isReconnect):
            if isReconnect { metrics.reconnects.increment() }
            do {
                let connection = try await open(on: promise.futureResult.eventLoop, verifyAnswers: isReconnect)
                let keep = state.withLock { $0.connected(slot: slot, connection: connection) }
                if keep {
                    let openConnections = openConnections
                    openConnections.increment()
                    connection.closeFuture.whenComplete { _ in
                        openConnections.decrement()
                        if let timeout = connection.unansweredTimeout { self.stoppedAnswering(connection, timeout) }
                    }
                }
                promise.succeed(connection)
                if !keep { connection.close() }
                return connection
            } catch {
                if let local = error.localResourceFailure {
                    // Not Redis's failure: no backoff (it would go on failing commands once descriptors are back),
                    // and no "redis connection failed" outage line.
                    state.withLock { $0.failedLocally(slot: slot) }
                    localResources.report(local, while: "connecting to redis \(label)", outcome: "the command failed; no backoff")
                    promise.fail(error)
                    throw error
                }
                let startsOutage = state.withLock { $0.failed(slot: slot, error: error, now: .now) }
                if startsOutage {
                    // Once per outage of this node, not once per pooled connection.
                    logger.warning("redis connection failed", metadata: ["endpoint": "\(label)", "error": "\(error)"])
                }
                promise.fail(error)
                throw error
            }
        }
    }

    /// `connection` closed because a command went unanswered: its slot backs off, as after a failed connect.
    private func stoppedAnswering(_ connection: RedisConnection, _ timeout: RedisClientError) {
        let startsOutage = state.withLock { $0.stoppedAnswering(connection, error: timeout, now: .now) }
        if startsOutage {
            logger.warning("redis stopped answering: commands fail at once while it is retried", metadata: ["endpoint": "\(label)", "error": "\(timeout)"])
        }
    }

    /// A new connection to the node, or to the primary the sentinels name (checked to be one: `ROLE`).
    /// `verifyAnswers`: a reopen, which checks the server answers (``RedisConnection/connect(to:configuration:eventLoopGroup:tlsContext:verifyAnswers:onPush:)``).
    private func open(on eventLoop: any EventLoop, verifyAnswers: Bool) async throws(RedisClientError) -> RedisConnection {
        guard let locator else {
            return try await RedisConnection.connect(
                to: endpoint, configuration: configuration, eventLoopGroup: eventLoop, tlsContext: tlsContext, verifyAnswers: verifyAnswers)
        }
        let primary = try await locator.locate(eventLoopGroup: eventLoop)
        let connection = try await RedisConnection.connect(to: primary, configuration: configuration, eventLoopGroup: eventLoop, tlsContext: tlsContext)
        do {
            try await RedisSentinelLocator.requirePrimary(connection)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// The caller's event loop if it is one of the group's and the group has several (with one, every connection
    /// is on it anyway). Cheap off the loops: one thread-local read.
    private func localEventLoop() -> (any EventLoop)? {
        guard isMultiLoop, MultiThreadedEventLoopGroup.currentEventLoop != nil else { return nil }
        let loop = eventLoopGroup.any()  // the caller's loop when it is one of the group's
        return loop.inEventLoop ? loop : nil
    }

    /// Sends `command` on a pooled connection.
    func send(_ command: RedisCommand) async throws(RedisClientError) -> RESPValue {
        try await connection().send(command)
    }

    /// With sentinels: when they name another primary than the one the open connections reach (a switchover, or
    /// a failover this client has not noticed yet), reconnects. One sentinel round trip.
    func followPrimary() async {
        guard let locator, let named = try? await locator.locate(eventLoopGroup: eventLoopGroup) else { return }
        let stale = state.withLock { $0.openConnections }.filter { $0.endpoint.host != named.host || $0.endpoint.port != named.port }
        guard !stale.isEmpty else { return }
        logger.notice(
            "redis sentinels name a new primary; reconnecting",
            metadata: ["master": "\(locator.sentinel.masterName)", "primary": "\(named)", "was": "\(stale[0].endpoint)"])
        for connection in stale { await connection.closeAndWait() }
    }

    /// Closes every connection; later commands fail with ``RedisClientError/shutDown``.
    func close() {
        for connection in state.withLock({ $0.shutDown() }) { connection.close() }
    }

    private static func value(of future: EventLoopFuture<RedisConnection>) async throws(RedisClientError) -> RedisConnection {
        do {
            return try await future.get()
        } catch let error as RedisClientError {
            throw error
        } catch {
            throw .connectionFailed("\(error)")
        }
    }
}

/// The pool's bookkeeping, pure so it can be reasoned about (and tested) without sockets.
struct RedisConnectionPoolState: Sendable {
    private enum Slot {
        /// No connection; `retryAt` is when the backoff after `failures` consecutive failures ends.
        case empty(failures: Int, retryAt: ContinuousClock.Instant?, lastError: RedisClientError?)
        /// A connect is under way; other commands for this slot wait for it.
        case connecting(EventLoopFuture<RedisConnection>, failures: Int)
        case connected(RedisConnection)
    }

    enum Decision {
        case use(RedisConnection)
        case wait(EventLoopFuture<RedisConnection>)
        /// The caller opens the connection and completes `promise` (which others wait on). `isReconnect`: the slot
        /// had a connection that died, or its last connect failed (counted in `concord_redis_reconnects_total`).
        case connect(slot: Int, promise: EventLoopPromise<RedisConnection>, isReconnect: Bool)
        case fail(RedisClientError)
    }

    private var slots: [Slot]
    private var nextSlot = 0
    private var isShutDown = false
    private let backoff: Duration
    private let maximumBackoff: Duration
    /// How many slots a caller on one event loop fills with connections on it: an equal share of the slots.
    private let perLoop: Int

    /// `loops`: how many event loops the pool's group has.
    init(size: Int, backoff: Duration, maximumBackoff: Duration, loops: Int = 1) {
        self.slots = Array(repeating: .empty(failures: 0, retryAt: nil, lastError: nil), count: size)
        self.perLoop = max(1, size / max(1, loops))
        self.backoff = backoff
        self.maximumBackoff = maximumBackoff
    }

    /// `now` is read only when a slot is backing off (reading the clock is not free on every command). `local`: the
    /// caller's event loop, when it runs on one of the pool's; `makePromise` makes the promise on it then (a new
    /// connection opens on the promise's loop). Such a caller opens connections on its loop up to its share of the
    /// slots (``init(size:backoff:maximumBackoff:loops:)``) and then takes turns among them; a caller off the loops,
    /// or on a loop with no connection and no free slot, takes turns among all slots.
    mutating func next(
        now: @autoclosure () -> ContinuousClock.Instant, local: (any EventLoop)? = nil,
        makePromise: () -> EventLoopPromise<RedisConnection>
    ) -> Decision {
        guard !isShutDown else { return .fail(.shutDown) }
        if let local, let index = localSlot(on: local, now: now) { return take(slot: index, now: now, makePromise: makePromise) }
        let index = nextSlot
        nextSlot = (nextSlot + 1) % slots.count
        return take(slot: index, now: now, makePromise: makePromise)
    }

    /// The slot a caller on `loop` should take: a free slot (not backing off) while the loop has fewer than its
    /// share, else the loop's next slot in turn (a dead one is reopened on the loop); nil when the loop has none.
    private mutating func localSlot(on loop: any EventLoop, now: () -> ContinuousClock.Instant) -> Int? {
        var owned = 0
        var free: Int?
        var next: Int?
        for offset in 0..<slots.count {
            let index = (nextSlot + offset) % slots.count
            switch slots[index] {
            case .connected(let connection) where connection.eventLoop === loop:
                owned += 1
                if next == nil { next = index }
            case .connecting(let future, _) where future.eventLoop === loop:
                owned += 1
                if next == nil { next = index }
            case .empty(_, let retryAt, _) where free == nil:
                if retryAt.map({ now() >= $0 }) ?? true { free = index }
            default:
                break
            }
        }
        if owned < perLoop, let free { return free }
        if let next { nextSlot = (next + 1) % slots.count }
        return next
    }

    private mutating func take(
        slot index: Int, now: () -> ContinuousClock.Instant, makePromise: () -> EventLoopPromise<RedisConnection>
    ) -> Decision {
        switch slots[index] {
        case .connected(let connection) where connection.leftCommandUnanswered:
            // Closing (or closed) with a command unanswered: back off now, not when its close callback runs.
            _ = stoppedAnswering(connection, error: connection.unansweredTimeout ?? .timeout("a command went unanswered"), now: now())
            return take(slot: index, now: now, makePromise: makePromise)
        case .connected(let connection) where connection.isActive:
            return .use(connection)
        case .connected:
            let promise = makePromise()
            slots[index] = .connecting(promise.futureResult, failures: 0)
            return .connect(slot: index, promise: promise, isReconnect: true)
        case .connecting(let future, _):
            return .wait(future)
        case .empty(let failures, let retryAt, let lastError):
            if let retryAt, now() < retryAt {
                // Backing off here; borrow another live connection if there is one.
                for slot in slots {
                    if case .connected(let connection) = slot, connection.isActive, !connection.leftCommandUnanswered {
                        return .use(connection)
                    }
                }
                return .fail(.backingOff(lastError?.description ?? "connection failed"))
            }
            let promise = makePromise()
            slots[index] = .connecting(promise.futureResult, failures: failures)
            return .connect(slot: index, promise: promise, isReconnect: failures > 0)
        }
    }

    /// Records a new connection; `false` when the pool shut down meanwhile (the caller closes it).
    mutating func connected(slot: Int, connection: RedisConnection) -> Bool {
        guard !isShutDown else { return false }
        slots[slot] = .connected(connection)
        return true
    }

    /// Records a failed connect and starts the backoff. Returns whether this failure starts an outage of the
    /// node: the slot's first failure while no other slot is failing (the pool logs only that one).
    mutating func failed(slot: Int, error: RedisClientError, now: ContinuousClock.Instant) -> Bool {
        guard case .connecting(_, let previous) = slots[slot] else { return false }
        let failures = previous + 1
        let delay = min(maximumBackoff, backoff * (1 << min(failures - 1, 20)))
        slots[slot] = .empty(failures: failures, retryAt: now + delay, lastError: error)
        let othersFailing = slots.indices.contains { $0 != slot && Self.isFailing(slots[$0]) }
        return failures == 1 && !othersFailing
    }

    /// Records that `connection` closed with a command unanswered: its slot, if it still holds it, waits out the
    /// first backoff before a reopen. Returns whether this starts an outage of the node (as ``failed(slot:error:now:)``).
    mutating func stoppedAnswering(_ connection: RedisConnection, error: RedisClientError, now: ContinuousClock.Instant) -> Bool {
        guard let index = slots.firstIndex(where: { if case .connected(let held) = $0 { held === connection } else { false } }) else {
            return false
        }
        slots[index] = .empty(failures: 1, retryAt: now + backoff, lastError: error)
        return !slots.indices.contains { $0 != index && Self.isFailing(slots[$0]) }
    }

    /// Records a connect that failed in this process (``RedisClientError/localResourceFailure``): the slot is free
    /// again at once — Redis was not reached, so its failure count and backoff stay as they were.
    mutating func failedLocally(slot: Int) {
        guard case .connecting(_, let previous) = slots[slot] else { return }
        slots[slot] = .empty(failures: previous, retryAt: nil, lastError: nil)
    }

    private static func isFailing(_ slot: Slot) -> Bool {
        switch slot {
        case .empty(let failures, _, _), .connecting(_, let failures): failures > 0
        case .connected: false
        }
    }

    /// The connections the slots hold now.
    var openConnections: [RedisConnection] {
        slots.compactMap { if case .connected(let connection) = $0 { connection } else { nil } }
    }

    mutating func shutDown() -> [RedisConnection] {
        isShutDown = true
        var open: [RedisConnection] = []
        for slot in slots { if case .connected(let connection) = slot { open.append(connection) } }
        slots = slots.map { _ in .empty(failures: 0, retryAt: nil, lastError: .shutDown) }
        return open
    }
}
