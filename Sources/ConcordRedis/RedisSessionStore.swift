import ConcordSessions
import Logging
import NIOCore
import NIOPosix

/// A ``SessionStore`` in Redis or Redis Cluster.
///
/// Each session is one string key, `<prefix>session:{<id>}`, holding a small header (version, user id) and the
/// payload, with a Redis expiry as its TTL (see ``RedisSessionRecord``). Versioned saves run as one Lua script
/// (compare version, write, set expiry: atomic on the server); `load` is one `GET`, `version(id:)` one
/// `GETRANGE` of the 20-byte header. A user's sessions are a set at `<prefix>user:{<userID>}`; in a cluster it
/// usually lives on another node than the session, so it is updated after the session write and read back
/// tolerantly: ids whose sessions have expired are dropped from it when listed.
///
/// Every Redis failure (refused, closed, timed out, reconnecting) throws `SessionStoreError.unavailable` within
/// the client's timeouts; the client reconnects by itself when Redis returns.
public final class RedisSessionStore: SessionStore {
    public let configuration: RedisSessionStoreConfiguration
    public let client: RedisClient
    private let logger: Logger

    public init(
        configuration: RedisSessionStoreConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "concord.redis.store")
    ) throws(RedisClientError) {
        self.configuration = configuration
        self.client = try RedisClient(configuration: configuration.client, eventLoopGroup: eventLoopGroup, logger: logger)
        self.logger = logger
    }

    /// Closes the store's connections.
    public func shutdown() {
        client.shutdown()
    }

    public func load(id: String) async throws -> StoredSession? {
        let reply = try await send(.get(sessionKey(id)))
        guard case .bulkString(let record) = reply else { return nil }
        return try RedisSessionRecord.decode(id: id, record: record)
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        guard session.payload.count <= configuration.maximumPayloadSize else {
            throw SessionStoreError.tooLarge(size: session.payload.count, limit: configuration.maximumPayloadSize)
        }
        let userID = session.userID.flatMap { $0.isEmpty ? nil : $0 }
        if let userID, userID.utf8.count > RedisSessionRecord.maximumUserIDLength {
            throw SessionStoreError.tooLarge(size: userID.utf8.count, limit: RedisSessionRecord.maximumUserIDLength)
        }
        let milliseconds = Self.milliseconds(ttl)
        let reply = try await run(
            RedisSessionRecord.saveScript,
            key: sessionKey(session.id),
            arguments: [
                RedisArgument(expectedVersion.map(String.init) ?? ""), RedisArgument(milliseconds),
                RedisArgument(RedisSessionRecord.body(userID: userID, payload: session.payload)),
            ])
        guard let fields = reply.elements, fields.count == 4, let saved = fields[0].int, let version = fields[1].int,
            let exists = fields[2].int, let previousUser = fields[3].string
        else { throw SessionStoreError.corrupt("unexpected reply to the save script: \(reply)") }
        guard saved == 1 else {
            throw SessionStoreError.conflict(expected: expectedVersion ?? 0, actual: exists == 1 ? UInt64(version) : nil)
        }
        // The index lives in the user's slot (another node in a cluster), so it follows the session write.
        if let userID {
            _ = try await run(
                RedisSessionRecord.indexScript, key: userKey(userID),
                arguments: [RedisArgument(session.id), RedisArgument(milliseconds)])
        }
        if !previousUser.isEmpty, previousUser != userID {
            _ = try await send(.srem(userKey(previousUser), [RedisArgument(session.id)]))
        }
        return UInt64(version)
    }

    public func delete(id: String) async throws {
        let reply = try await run(RedisSessionRecord.deleteScript, key: sessionKey(id), arguments: [""])
        if let user = reply.string, !user.isEmpty {
            _ = try await send(.srem(userKey(user), [RedisArgument(id)]))
        }
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        let milliseconds = Self.milliseconds(ttl)
        let reply = try await run(RedisSessionRecord.touchScript, key: sessionKey(id), arguments: [RedisArgument(milliseconds)])
        guard let user = reply.string else { return false }
        if !user.isEmpty {
            _ = try await run(
                RedisSessionRecord.indexScript, key: userKey(user), arguments: [RedisArgument(id), RedisArgument(milliseconds)])
        }
        return true
    }

    public func version(id: String) async throws -> UInt64? {
        let reply = try await send(.getRange(sessionKey(id), start: 0, end: RedisSessionRecord.versionLength - 1))
        guard case .bulkString(let header) = reply, header.readableBytes > 0 else { return nil }
        guard let version = RedisSessionRecord.version(header: header) else {
            throw SessionStoreError.corrupt("record of session \(id) has no valid version")
        }
        return version
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        let members = try await members(ofUser: userID)
        let live = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for id in members {
                group.addTask { (id, try await self.send(.exists(self.sessionKey(id))).int == 1) }
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

    public func deleteAll(forUser userID: String) async throws -> Int {
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

    private func sessionKey(_ id: String) -> RedisArgument {
        RedisArgument("\(configuration.keyPrefix)session:{\(id)}")
    }

    private func userKey(_ userID: String) -> RedisArgument {
        RedisArgument("\(configuration.keyPrefix)user:{\(userID)}")
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
        do {
            return try await client.run(script, keys: [key], arguments: arguments)
        } catch {
            throw storeError(error)
        }
    }

    private func storeError(_ error: RedisClientError) -> SessionStoreError {
        if let message = error.serverMessage, message.hasPrefix("WRONGTYPE") || message.hasPrefix("CORRUPT") {
            return .corrupt(message)
        }
        logger.warning("redis session store unavailable", metadata: ["error": "\(error)"])
        return .unavailable(error.description)
    }

    /// Redis wants a positive whole number of milliseconds.
    private static func milliseconds(_ ttl: Duration) -> Int64 {
        let (seconds, attoseconds) = ttl.components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
