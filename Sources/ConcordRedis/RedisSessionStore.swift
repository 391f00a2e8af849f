import ConcordSessions
import Logging
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// A ``SessionStore`` in Redis or Redis Cluster.
///
/// Each session is one string key, `<prefix>session:{<id>}`, holding a small header (version, user id) and the
/// payload, with a Redis expiry as its TTL (see ``RedisSessionRecord``). Versioned saves run as one Lua script
/// (compare version, write, set expiry: atomic on the server); `load` is one `GET`, `version(id:)` one
/// `GETRANGE` of the 20-byte header. A user's sessions are a set at `<prefix>user:{<userID>}`: on one server the save
/// script adds the session to it (one round trip per save); in a cluster it usually lives on another node than the
/// session, so it is updated after the session write. It is read back tolerantly: ids whose sessions have expired
/// are dropped from it when listed.
///
/// Every Redis failure (refused, closed, timed out, reconnecting) throws `SessionStoreError.unavailable` within
/// the client's timeouts; the client reconnects by itself when Redis returns. An outage is logged as one warning,
/// at most one summary line per `outageSummaryInterval`, and one notice when Redis answers again
/// (``StoreOutageLog``), not once per failed request.
///
/// Counts through swift-metrics: `concord_redis_session_loads_total`, `…_version_reads_total` (a near cache's
/// check), `…_saves_total`, `…_conflicts_total`, `…_unavailable_total`, and the client's `concord_redis_*` metrics
/// (docs/stores-redis.md).
public final class RedisSessionStore: SessionStore {
    public let configuration: RedisSessionStoreConfiguration
    public let client: RedisClient
    private let logger: Logger
    private let outageLog: StoreOutageLog
    private let loads: Counter
    private let versionReads: Counter
    private let saves: Counter
    private let conflicts: Counter
    private let unavailable: Counter

    /// - Parameter metricsFactory: where the store's and its client's counters go; the process-wide
    ///   `MetricsSystem` by default.
    public init(
        configuration: RedisSessionStoreConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "concord.redis.store"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(RedisClientError) {
        self.configuration = configuration
        self.client = try RedisClient(
            configuration: configuration.client, eventLoopGroup: eventLoopGroup, logger: logger, metricsFactory: metricsFactory)
        self.logger = logger
        self.outageLog = StoreOutageLog(
            subject: "redis session store", summaryInterval: configuration.outageSummaryInterval,
            recoveryQuietPeriod: configuration.outageRecoveryQuietPeriod)
        self.loads = Counter(label: "concord_redis_session_loads_total", factory: metricsFactory)
        self.versionReads = Counter(label: "concord_redis_session_version_reads_total", factory: metricsFactory)
        self.saves = Counter(label: "concord_redis_session_saves_total", factory: metricsFactory)
        self.conflicts = Counter(label: "concord_redis_session_conflicts_total", factory: metricsFactory)
        self.unavailable = Counter(label: "concord_redis_session_unavailable_total", factory: metricsFactory)
    }

    /// Closes the store's connections.
    public func shutdown() {
        client.shutdown()
    }

    public func load(id: String) async throws -> StoredSession? {
        loads.increment()
        return try await observed { () async throws -> StoredSession? in
            let reply = try await send(.get(sessionKey(id)))
            guard case .bulkString(let record) = reply else { return nil }
            return try RedisSessionRecord.decode(id: id, record: record)
        }
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        saves.increment()
        return try await observed { try await write(session, ttl: ttl, expectedVersion: expectedVersion) }
    }

    private func write(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        guard session.payload.count <= configuration.maximumPayloadSize else {
            throw SessionStoreError.tooLarge(size: session.payload.count, limit: configuration.maximumPayloadSize)
        }
        let userID = session.userID.flatMap { $0.isEmpty ? nil : $0 }
        if let userID, userID.utf8.count > RedisSessionRecord.maximumUserIDLength {
            throw SessionStoreError.tooLarge(size: userID.utf8.count, limit: RedisSessionRecord.maximumUserIDLength)
        }
        let milliseconds = Self.milliseconds(ttl)
        // On one server the write script also adds the session to its user's index (one round trip). In a cluster
        // the index lives in the user's slot, usually on another node, so it follows the session write.
        let indexKey = configuration.client.isCluster ? nil : userID.map(userKey)
        let (version, previousUser) = try await writeRecord(
            session, userID: userID, indexKey: indexKey, milliseconds: milliseconds, expectedVersion: expectedVersion)
        if let userID, indexKey == nil {
            _ = try await run(
                RedisSessionRecord.indexScript, key: userKey(userID),
                arguments: [RedisArgument(session.id), RedisArgument(milliseconds)])
        }
        if !previousUser.isEmpty, previousUser != userID {
            _ = try await send(.srem(userKey(previousUser), [RedisArgument(session.id)]))
        }
        return version
    }

    /// Writes the record (and, given `indexKey`, adds the session to that user index in the same script); returns
    /// its new version and the user id it had before (`""` when none or unchanged).
    private func writeRecord(
        _ session: StoredSession, userID: String?, indexKey: RedisArgument?, milliseconds: Int64, expectedVersion: UInt64?
    ) async throws -> (version: UInt64, previousUser: String) {
        let keys = indexKey.map { [sessionKey(session.id), $0] } ?? [sessionKey(session.id)]
        if let expectedVersion, expectedVersion > 0, expectedVersion < UInt64.max {
            // The caller read the record at `expectedVersion`: the next version is known here.
            var arguments = RedisSessionRecord.replaceArguments(
                expectedVersion: expectedVersion, userID: userID, milliseconds: milliseconds, payload: session.payload)
            if indexKey != nil { arguments.append(RedisArgument(session.id)) }
            let reply = try await run(RedisSessionRecord.replaceScript, keys: keys, arguments: arguments)
            if let previousUser = reply.string { return (expectedVersion + 1, previousUser) }
            guard let fields = reply.elements, fields.count == 3, let version = fields[1].int, let exists = fields[2].int
            else { throw SessionStoreError.corrupt("unexpected reply to the replace script: \(reply)") }
            conflicts.increment()
            throw SessionStoreError.conflict(expected: expectedVersion, actual: exists == 1 ? UInt64(version) : nil)
        }
        var arguments = [
            RedisArgument(expectedVersion.map(String.init) ?? ""), RedisArgument(milliseconds),
            RedisArgument(RedisSessionRecord.body(userID: userID, payload: session.payload)),
        ]
        if indexKey != nil { arguments.append(RedisArgument(session.id)) }
        let reply = try await run(RedisSessionRecord.saveScript, keys: keys, arguments: arguments)
        guard let fields = reply.elements, fields.count == 4, let saved = fields[0].int, let version = fields[1].int,
            let exists = fields[2].int, let previousUser = fields[3].string
        else { throw SessionStoreError.corrupt("unexpected reply to the save script: \(reply)") }
        guard saved == 1 else {
            conflicts.increment()
            throw SessionStoreError.conflict(expected: expectedVersion ?? 0, actual: exists == 1 ? UInt64(version) : nil)
        }
        return (UInt64(version), previousUser)
    }

    public func delete(id: String) async throws {
        try await observed { () async throws -> Void in
            let reply = try await run(RedisSessionRecord.deleteScript, key: sessionKey(id), arguments: [""] + indexArguments(id))
            if let user = reply.string, !user.isEmpty {
                _ = try await send(.srem(userKey(user), [RedisArgument(id)]))
            }
        }
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        try await observed { () async throws -> Bool in
            let milliseconds = Self.milliseconds(ttl)
            let reply = try await run(
                RedisSessionRecord.touchScript, key: sessionKey(id), arguments: [RedisArgument(milliseconds)] + indexArguments(id))
            guard let user = reply.string else { return false }
            if !user.isEmpty {
                _ = try await run(
                    RedisSessionRecord.indexScript, key: userKey(user),
                    arguments: [RedisArgument(id), RedisArgument(milliseconds)])
            }
            return true
        }
    }

    public func version(id: String) async throws -> UInt64? {
        versionReads.increment()
        return try await observed { () async throws -> UInt64? in
            let reply = try await send(.getRange(sessionKey(id), start: 0, end: RedisSessionRecord.versionLength - 1))
            guard case .bulkString(let header) = reply, header.readableBytes > 0 else { return nil }
            guard let version = RedisSessionRecord.version(header: header) else {
                throw SessionStoreError.corrupt("record of session \(id) has no valid version")
            }
            return version
        }
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        try await observed { try await liveSessionIDs(forUser: userID) }
    }

    /// The default check (a touch and a version), then, without cluster mode, whether the server is a cluster node:
    /// the check's own key may live on the node given (slot 459), and then only sessions whose keys hash elsewhere
    /// fail, with `MOVED` — so before 2026-12-03 one cluster node in three passed the check and its logins got 503.
    public func checkAnswers() async -> SessionStoreError? {
        if let error = await checkTouchAndVersionAnswer() { return error }
        guard !client.configuration.isCluster else { return nil }
        do {
            let info = try await send(RedisCommand("INFO", ["cluster"]))
            if let text = info.string, text.contains("cluster_enabled:1") {
                return .unavailable("the server answers as a Redis Cluster node (INFO cluster: cluster_enabled:1) — "
                    + Self.hint(forReply: "MOVED", isCluster: false)!)
            }
        } catch {
            // A server that refuses INFO (renamed by an ACL or rename-command) answered the check above: leave it.
        }
        return nil
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        try await observed { try await deleteSessions(ofUser: userID) }
    }

    /// The index's ids whose sessions exist and still belong to `userID`. The others — expired, or re-saved for
    /// another user while the index update after it failed — are removed from the index.
    private func liveSessionIDs(forUser userID: String) async throws -> [String] {
        let members = try await members(ofUser: userID)
        // What a record owned by `userID` holds right after its version: the user id's length and the user id.
        let owner = RedisSessionRecord.body(userID: userID, payload: [])
        let start = RedisSessionRecord.versionLength
        let live = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for id in members {
                group.addTask {
                    // The record's user id length and user id: `""` when the session is gone.
                    let span = try await self.send(.getRange(self.sessionKey(id), start: start, end: start + owner.readableBytes - 1))
                    guard case .bulkString(let bytes) = span else { return (id, false) }
                    return (id, bytes == owner)
                }
            }
            var live: [String] = []
            var expired: [RedisArgument] = []
            for try await (id, exists) in group {
                if exists { live.append(id) } else { expired.append(RedisArgument(id)) }
            }
            if !expired.isEmpty { _ = try await self.send(.srem(self.userKey(userID), expired)) }
            return live
        }
        return live.sorted()
    }

    private func deleteSessions(ofUser userID: String) async throws -> Int {
        let members = try await members(ofUser: userID)
        let deleted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for id in members {
                group.addTask {
                    // Only sessions still owned by this user: one re-saved for another user stays.
                    let reply = try await self.run(
                        RedisSessionRecord.deleteScript, key: self.sessionKey(id), arguments: [RedisArgument(userID)])
                    return reply.string != nil
                }
            }
            var count = 0
            for try await deleted in group where deleted { count += 1 }
            return count
        }
        _ = try await send(.del(userKey(userID)))
        return deleted
    }

    // MARK: Keys and errors

    /// Written straight into one buffer (an interpolated `String` would be a second allocation per command).
    private func sessionKey(_ id: String) -> RedisArgument {
        var key = ByteBuffer()
        key.reserveCapacity(configuration.keyPrefix.utf8.count + id.utf8.count + 10)
        key.writeString(configuration.keyPrefix)
        key.writeStaticString("session:{")
        key.writeString(id)
        key.writeStaticString("}")
        return RedisArgument(key)
    }

    private func userKey(_ userID: String) -> RedisArgument {
        RedisArgument("\(configuration.keyPrefix)user:{\(userID)}")
    }

    /// On one server, what lets ``RedisSessionRecord/touchScript`` and ``RedisSessionRecord/deleteScript`` update
    /// the user index themselves (the index keys' prefix, the session id); none in a cluster, where the index
    /// usually lives on another node.
    private func indexArguments(_ id: String) -> [RedisArgument] {
        configuration.client.isCluster ? [] : [RedisArgument("\(configuration.keyPrefix)user:{"), RedisArgument(id)]
    }

    private func members(ofUser userID: String) async throws -> [String] {
        guard let members = try await send(.smembers(userKey(userID))).elements else {
            throw SessionStoreError.corrupt("index of user \(userID) is not a set")
        }
        return members.compactMap(\.string)
    }

    private func send(_ command: RedisCommand) async throws(SessionStoreError) -> RESPValue {
        do {
            return try await client.send(command)
        } catch {
            throw storeError(error)
        }
    }

    private func run(_ script: RedisScript, key: RedisArgument, arguments: [RedisArgument]) async throws(SessionStoreError)
        -> RESPValue
    {
        try await run(script, keys: [key], arguments: arguments)
    }

    private func run(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) async throws(SessionStoreError)
        -> RESPValue
    {
        do {
            return try await client.run(script, keys: keys, arguments: arguments)
        } catch {
            throw storeError(error)
        }
    }

    private func storeError(_ error: RedisClientError) -> SessionStoreError {
        if let message = error.serverMessage, message.hasPrefix("WRONGTYPE") || message.hasPrefix("CORRUPT") {
            return .corrupt(message)
        }
        if let message = error.serverMessage, let hint = Self.hint(forReply: message, isCluster: client.configuration.isCluster) {
            return .unavailable("\(error.description) — \(hint)", notApplied: error.wasNotSent)
        }
        return .unavailable(error.description, notApplied: error.wasNotSent)
    }

    /// What a reply that says Redis answered but will not serve this store means for its configuration: a server
    /// that refuses every operation reads as an outage otherwise.
    static func hint(forReply message: String, isCluster: Bool) -> String? {
        if !isCluster, ["MOVED", "ASK ", "CROSSSLOT", "CLUSTERDOWN"].contains(where: message.hasPrefix) {
            return "this server is a Redis Cluster node: give several of the cluster's nodes as URLs "
                + "(redis://HOST:PORT,redis://HOST:PORT) or set RedisClientConfiguration.cluster"
        }
        if message.hasPrefix("READONLY") {
            return "this server is a read-only replica: give the primary, or a redis-sentinel:// URL that follows it"
        }
        return nil
    }

    // MARK: Outages

    /// Runs one store operation and tells the outage log whether Redis answered: `.unavailable` is a failure;
    /// a success, a conflict or a corrupt record mean Redis answered; `.tooLarge` never reached Redis.
    private func observed<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            let result = try await operation()
            reached()
            return result
        } catch let error as SessionStoreError {
            if error.isUnavailable {
                unavailable.increment()
                outageLog.failed(error, logger: logger)
            } else if !error.isTooLarge {
                reached()
            }
            throw error
        }
    }

    private func reached() {
        outageLog.succeeded(logger: logger)
    }

    /// Redis wants a positive whole number of milliseconds.
    private static func milliseconds(_ ttl: Duration) -> Int64 {
        let (seconds, attoseconds) = ttl.components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
