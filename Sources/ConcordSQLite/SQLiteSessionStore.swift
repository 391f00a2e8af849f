import ConcordSessions
import Logging
import NIOCore
import SQLiteNIO
import ServiceLifecycle

/// A ``SessionStore`` in an SQLite file: the `store` strategy with nothing installed.
///
/// - Several app processes on one machine may share the file: it runs in WAL mode (readers never block the
///   writer), every write is one statement (so the version check and the write are atomic under SQLite's file
///   lock), and a lock held by another process is waited for up to
///   ``SQLiteSessionStoreConfiguration/busyTimeout``, then the operation fails with `.unavailable`.
/// - The table and its indexes are created on first use (`CREATE … IF NOT EXISTS`); the schema is in
///   docs/stores.md. Expiry is a column in milliseconds since the Unix epoch, so every process agrees on it.
/// - As a `Service`, ``run()`` deletes expired rows every ``SQLiteSessionStoreConfiguration/sweepInterval``
///   (reads already ignore them) and closes the connections on graceful shutdown.
public final class SQLiteSessionStore: SessionStore, Service {
    public let configuration: SQLiteSessionStoreConfiguration
    private let clock: any Clock<Duration>
    private let logger: Logger
    private let connections: SQLiteConnections
    private let statements: SQLiteSessionStatements
    private let outageLog: StoreOutageLog
    private let fileWatch = SQLiteFileWatch()

    /// A store on `configuration.path`; nothing is opened until the first operation.
    /// - Parameters:
    ///   - clock: paces the sweep in ``run()`` (tests pass a manual clock). Expiry itself uses wall time.
    public init(
        configuration: SQLiteSessionStoreConfiguration = .init(),
        clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger = Logger(label: "concord.sqlite")
    ) {
        self.statements = SQLiteSessionStatements(tableName: configuration.tableName)
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        // (A write lock held by another process fails writes while reads succeed: the quiet period keeps that from
        // logging "unavailable" and "answers again" on every request.)
        self.outageLog = StoreOutageLog(subject: "SQLite session store", metadata: ["path": "\(configuration.path)"])
        self.connections = SQLiteConnections { [statements, fileWatch] in
            let connections = try await Self.openConnections(configuration: configuration, statements: statements, logger: logger)
            let identity = configuration.isPrivateDatabase ? nil : SQLiteFileIdentity(path: configuration.path)
            fileWatch.opened(identity)
            return connections
        }
    }

    deinit {
        // SQLite connections must be closed explicitly; do it for users who never ran or closed the store.
        let connections = self.connections
        Task { await connections.close() }
    }

    public func load(id: String) async throws -> StoredSession? {
        let rows = try await perform { try await $0.query(self.statements.load, [.text(id)]) }
        guard let row = rows.first else { return nil }
        guard let payload = row.column("payload"), let version = row.column("version")?.integer else {
            throw SessionStoreError.corrupt("row of \(id) lacks payload or version")
        }
        return StoredSession(
            id: id,
            payload: payload.blob.map { Array($0.readableBytesView) } ?? [],
            version: UInt64(version),
            userID: row.column("user_id")?.string
        )
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        guard session.payload.count <= configuration.maximumPayloadSize else {
            throw SessionStoreError.tooLarge(size: session.payload.count, limit: configuration.maximumPayloadSize)
        }
        var binds: [SQLiteData] = [
            .text(session.id),
            .blob(ByteBuffer(bytes: session.payload)),
            session.userID.map { .text($0) } ?? .null,
            .integer(Int(ttl.clampedMilliseconds)),
        ]
        let sql: String
        switch expectedVersion {
        case nil: sql = statements.upsert
        case 0: sql = statements.insertIfAbsent
        case let expected?:
            sql = statements.updateIfVersion
            binds.append(.integer(Int(clamping: expected)))
        }
        let rows = try await perform { [binds] in try await $0.query(sql, binds) }
        if let version = rows.first?.column("version")?.integer {
            return UInt64(version)
        }
        let expected = expectedVersion ?? 0
        throw SessionStoreError.conflict(expected: expected, actual: try await version(id: session.id))
    }

    public func delete(id: String) async throws {
        _ = try await perform { try await $0.query(self.statements.delete, [.text(id)]) }
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        let binds: [SQLiteData] = [.text(id), .integer(Int(ttl.clampedMilliseconds))]
        return try await !perform { try await $0.query(self.statements.touch, binds) }.isEmpty
    }

    public func version(id: String) async throws -> UInt64? {
        let rows = try await perform { try await $0.query(self.statements.version, [.text(id)]) }
        return rows.first?.column("version")?.integer.map { UInt64($0) }
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        let rows = try await perform { try await $0.query(self.statements.sessionIDsForUser, [.text(userID)]) }
        return rows.compactMap { $0.column("id")?.string }
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        let rows = try await perform { try await $0.query(self.statements.deleteAllForUser, [.text(userID)]) }
        return rows.count { $0.column("live")?.integer == 1 }
    }

    /// Deletes every expired row now, in batches so other processes wait for the lock only briefly.
    /// - Returns: how many rows were deleted.
    @discardableResult
    public func sweepExpired() async throws -> Int {
        var deleted = 0
        while true {
            let batch = try await perform { try await $0.query(self.statements.sweepBatch, []) }.count
            deleted += batch
            if batch < SQLiteSessionStatements.sweepBatchSize { return deleted }
        }
    }

    /// Sweeps expired rows every ``SQLiteSessionStoreConfiguration/sweepInterval`` until cancelled or shut
    /// down gracefully, then closes the connections.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await ExpirySweepLoop.run(every: self.configuration.sweepInterval, on: self.clock, logger: self.logger) {
                self.checkFile()
                return try await self.sweepExpired()
            }
        }
        await close()
    }

    /// Whether the file this store opened is still the one at its path (checked before every sweep). A file
    /// deleted or replaced under running nodes splits them: this process goes on with the file it has open, one
    /// that starts later opens another, and neither sees the other's sessions. That cannot be repaired from
    /// here, so it is logged as an error, once per change, naming the fix (restart every node that shares it).
    /// - Returns: the change, nil while the file is the one opened (or none is open yet).
    @discardableResult
    public func checkFile() -> SQLiteFileChange? {
        let path = configuration.path
        let (change, isNew) = fileWatch.check(path: path)
        if let change, isNew {
            logger.error(
                "the SQLite session file was \(change == .deleted ? "deleted" : "replaced by another file") while this process has it open: this node keeps using the old file, nodes started from now on use \(change == .deleted ? "a new, empty one" : "the new one"), and they no longer share sessions; restart every node that shares it",
                metadata: ["path": "\(path)"])
        }
        return change
    }

    /// Closes the connections. Call it once no operation is running (``run()`` does it on shutdown).
    public func close() async {
        await connections.close()
    }

    /// Runs `body` on a connection and maps every failure to a ``SessionStoreError``.
    private func perform<T: Sendable>(_ body: @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + configuration.busyTimeout
        while true {
            do {
                let result = try await body(connections.next())
                outageLog.succeeded(logger: logger)
                return result
            } catch let error as SQLiteError where Self.isStaleSnapshot(error) && ContinuousClock.now < deadline {
                // WAL: another process committed between this statement's read and its write. SQLite rolled the
                // statement back (nothing applied) and its busy handler does not wait in this case, so the
                // statement runs again on a fresh snapshot, within the same bound as a busy wait.
                try await Task.sleep(for: .milliseconds(1))
            } catch {
                let mapped = Self.sessionStoreError(for: error)
                if mapped.isUnavailable { outageLog.failed(mapped, logger: logger) }
                throw mapped
            }
        }
    }

    private static func isStaleSnapshot(_ error: SQLiteError) -> Bool {
        if case .busyInSnapshot = error.reason { return true }
        return false
    }

    static func sessionStoreError(for error: any Error) -> SessionStoreError {
        switch error {
        case let error as SessionStoreError: return error
        case let error as SQLiteError:
            switch error.reason {
            case .notADatabase:
                // The file, not a record: nothing can be read or written until someone replaces it.
                return .unavailable("the file is not an SQLite database (\(error.description))", notApplied: true)
            case .corrupt, .corruptIndex, .corruptSequenceSchema, .corruptVirtualTable, .format:
                return .corrupt(error.description)
            case .busy, .busyInRecovery, .busyInSnapshot, .busyTimeout, .locked, .lockedBySharedCache, .cantOpen,
                .cantOpenDirectory, .cantOpenInvalidPath, .cantOpenUnfollowedSymlink:
                // A lock not granted or a file not opened: the statement did not run, so a write may be tried
                // again (ReadRetryingSessionStore). Other errors (I/O during a commit) leave that unknown.
                return .unavailable(error.description, notApplied: true)
            default:
                return .unavailable(error.description)
            }
        default: return .unavailable(String(describing: error))
        }
    }

    private static func openConnections(
        configuration: SQLiteSessionStoreConfiguration,
        statements: SQLiteSessionStatements,
        logger: Logger
    ) async throws -> [SQLiteConnection] {
        do {
            try configuration.checkFile()
        } catch {
            // Unavailable, not a lasting failure: a missing directory may be created, a file's mode changed.
            throw SessionStoreError.unavailable(error.description, notApplied: true)
        }
        let inMemory = configuration.isPrivateDatabase
        // Separate connections to ":memory:" (or "") would be separate databases.
        let count = inMemory ? 1 : max(1, configuration.connectionCount)
        var connections: [SQLiteConnection] = []
        do {
            for index in 0..<count {
                let connection = try await SQLiteConnection.open(storage: .file(path: configuration.path), logger: logger)
                connections.append(connection)
                // Replaces SQLiteNIO's busy handler, which retries forever, with a bounded wait.
                _ = try await connection.query("PRAGMA busy_timeout = \(min(configuration.busyTimeout.clampedMilliseconds, Int64(Int32.max)))")
                if index == 0 && !inMemory {
                    let mode = try await connection.query("PRAGMA journal_mode = WAL").first?.columns.first?.data.string
                    if mode?.lowercased() != "wal" {
                        logger.warning(
                            "SQLite did not switch to WAL mode; readers will block writers",
                            metadata: ["path": "\(configuration.path)", "journal_mode": "\(mode ?? "?")"])
                    }
                }
                // In WAL mode NORMAL never corrupts the file; a power cut may forget the last commits.
                _ = try await connection.query("PRAGMA synchronous = NORMAL")
                if index == 0 {
                    for statement in statements.createSchema { _ = try await connection.query(statement) }
                }
            }
        } catch {
            for connection in connections { try? await connection.close() }
            throw error
        }
        logger.debug("opened SQLite session store", metadata: ["path": "\(configuration.path)", "connections": "\(count)"])
        return connections
    }
}
