import ConcordSessions
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A ``SessionStore`` in a PostgreSQL table, shared by every app server (the `store` strategy).
///
/// - The table and its indexes are created on first use (`CREATE … IF NOT EXISTS` under an advisory lock);
///   the schema is in docs/stores.md. Expiry is a `timestamptz` compared with the server's `now()`.
/// - Every operation is one statement (versioned writes compare and set in it) and is bounded by
///   ``PostgresSessionStoreConfiguration/operationTimeout``: when the server is down or slow, operations fail
///   with `SessionStoreError.unavailable` instead of hanging, and succeed again once it is back (the
///   connection pool reconnects by itself).
/// - As a `Service`, ``run()`` runs the connection pool and deletes expired rows every
///   ``PostgresSessionStoreConfiguration/sweepInterval``. Operations need ``run()`` to be running.
public final class PostgresSessionStore: SessionStore, Service {
    public let configuration: PostgresSessionStoreConfiguration
    private let pool: ReplaceablePostgresClient
    private let clock: any Clock<Duration>
    private let logger: Logger
    private let statements: PostgresSessionStatements
    private let schema: SessionStoreSetup<Void>
    private let outageLog: StoreOutageLog
    private let connectFailures: PostgresConnectFailureLog
    /// While the server cannot be reached, statements fail at once and the store's probe waits for a connection.
    private let outageGate = PostgresOutageGate()
    /// Asks ``run()`` to probe until PostgreSQL answers (``PostgresOutageGate``).
    private let probeRequests: AsyncStream<Void>
    private let probeRequested: AsyncStream<Void>.Continuation

    /// A store for the server in `configuration`; nothing is sent before the first operation.
    /// - Parameters:
    ///   - clock: paces the sweep in ``run()`` (tests pass a manual clock). Expiry uses the server's time.
    public init(
        configuration: PostgresSessionStoreConfiguration,
        clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger = Logger(label: "concord.postgres")
    ) {
        let statements = PostgresSessionStatements(tableName: configuration.tableName)
        // The pool logs every failed reconnect at info; the store logs the outage (outageLog) instead.
        let connectFailures = PostgresConnectFailureLog()
        let poolLogger = connectFailures.poolLogger(upstream: logger, upstreamLevel: max(logger.logLevel, .warning))
        let clientConfiguration = Self.clientConfiguration(configuration)
        let pool = ReplaceablePostgresClient { PostgresClient(configuration: clientConfiguration, backgroundLogger: poolLogger) }
        self.configuration = configuration
        self.pool = pool
        self.connectFailures = connectFailures
        (probeRequests, probeRequested) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.clock = clock
        self.logger = logger
        self.statements = statements
        self.schema = SessionStoreSetup { [logger] in
            // A port given in code (the URL is checked when read): out of range, the connection would wrap it.
            guard configuration.unixSocketPath != nil || (1...65535).contains(configuration.port) else {
                throw SessionStoreError.unavailable("PostgreSQL port \(configuration.port) is out of range (1...65535)")
            }
            try await pool.client.withTransaction(logger: logger) { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: statements.lockSchema, binds: Self.bindings(configuration.tableName)),
                    logger: logger)
                for statement in statements.createSchema {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
        }
        let server = configuration.unixSocketPath ?? "\(configuration.host):\(configuration.port)"
        self.outageLog = StoreOutageLog(subject: "PostgreSQL session store", metadata: ["server": "\(server)"])
    }

    public func load(id: String) async throws -> StoredSession? {
        let rows = try await query(statements.load, Self.bindings(id))
        guard let row = rows.first else { return nil }
        let (payload, version, userID) = try Self.decode(row) { try $0.decode((ByteBuffer, Int64, String?).self) }
        return StoredSession(id: id, payload: Array(payload.readableBytesView), version: UInt64(version), userID: userID)
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        guard session.payload.count <= configuration.maximumPayloadSize else {
            throw SessionStoreError.tooLarge(size: session.payload.count, limit: configuration.maximumPayloadSize)
        }
        var binds = PostgresBindings(capacity: 5)
        binds.append(session.id)
        binds.append(ByteBuffer(bytes: session.payload))
        binds.append(session.userID)
        binds.append(ttl.clampedMilliseconds)
        let sql: String
        switch expectedVersion {
        case nil: sql = statements.upsert
        case 0: sql = statements.insertIfAbsent
        case let expected?:
            sql = statements.updateIfVersion
            binds.append(Int64(clamping: expected))
        }
        if let row = try await query(sql, binds, isWrite: true).first {
            return UInt64(try Self.integer(row))
        }
        throw SessionStoreError.conflict(expected: expectedVersion ?? 0, actual: try await version(id: session.id))
    }

    public func delete(id: String) async throws {
        _ = try await query(statements.delete, Self.bindings(id), isWrite: true)
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        var binds = Self.bindings(id)
        binds.append(ttl.clampedMilliseconds)
        return try await !query(statements.touch, binds, isWrite: true).isEmpty
    }

    public func version(id: String) async throws -> UInt64? {
        try await query(statements.version, Self.bindings(id)).first.map { UInt64(try Self.integer($0)) }
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        try await query(statements.sessionIDsForUser, Self.bindings(userID)).map { row in try Self.decode(row) { try $0.decode(String.self) } }
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        let rows = try await query(statements.deleteAllForUser, Self.bindings(userID), isWrite: true)
        return try rows.first.map { Int(try Self.integer($0)) } ?? 0
    }

    /// Deletes every expired row now, in batches so that no statement holds many row locks for long.
    /// - Returns: how many rows were deleted.
    @discardableResult
    public func sweepExpired() async throws -> Int {
        var deleted = 0
        while true {
            let rows = try await query(statements.sweepBatch, PostgresBindings())
            let batch = try rows.first.map { Int(try Self.integer($0)) } ?? 0
            deleted += batch
            if batch < PostgresSessionStatements.sweepBatchSize { return deleted }
        }
    }

    /// Runs the connection pool and sweeps expired rows every ``PostgresSessionStoreConfiguration/sweepInterval``
    /// until cancelled or shut down gracefully.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.pool.run() }
            group.addTask { await self.probeWhenAsked() }
            await cancelWhenGracefulShutdown {
                await ExpirySweepLoop.run(every: self.configuration.sweepInterval, on: self.clock, logger: self.logger) {
                    try await self.sweepExpired()
                }
            }
            group.cancelAll()
        }
    }

    /// Runs one statement (creating the schema first if needed) within the operation timeout and maps every
    /// failure to a ``SessionStoreError``. A write that failed before it had a connection (the server down, the
    /// pool's wait timed out) is `unavailable(_:notApplied: true)`: it never reached PostgreSQL, so it may be
    /// retried (``ReadRetryingSessionStore``). Telling that needs the statement run on a leased connection
    /// (`withConnection`), ≈ 3 % slower at concurrency 1 than `client.query` (docs/stores.md); reads, retried on any
    /// unavailable error anyway, keep the faster call.
    private func query(_ sql: String, _ binds: PostgresBindings, isWrite: Bool = false) async throws -> [PostgresRow] {
        let lastConnectFailure = connectFailures.lastFailure
        let admission = outageGate.admit(lastConnectFailed: lastConnectFailure != nil)
        if admission != .go {
            if admission == .refuseAndProbe { probeRequested.yield() }
            let error = SessionStoreError.unavailable(
                "no connection to PostgreSQL (the store keeps trying in the background); the last attempt failed: \(lastConnectFailure ?? "")",
                notApplied: true)
            outageLog.failed(error, logger: logger)
            throw error
        }
        let start = isWrite ? StatementStart() : nil
        do {
            let rows = try await withTimeout(configuration.operationTimeout) { [pool, schema, logger] in
                try await schema.value()
                let client = pool.client
                let query = PostgresQuery(unsafeSQL: sql, binds: binds)
                guard let start else { return try await client.query(query, logger: logger).collect() }
                return try await client.withConnection { connection in
                    guard start.begin() else { throw CancellationError() }  // its caller was answered at the timeout
                    return try await connection.query(query, logger: logger).collect()
                }
            }
            reached()
            return rows
        } catch {
            var error = error
            if var timeout = error as? PostgresOperationTimeout {
                timeout.lastConnectFailure = connectFailures.lastFailure
                error = timeout
            }
            let mapped = Self.sessionStoreError(for: error, notApplied: start?.abandon() ?? false)
            if mapped.isUnavailable { outageLog.failed(mapped, logger: logger) }
            throw mapped
        }
    }

    /// PostgreSQL answered a statement: an outage, if any, is over.
    private func reached() {
        outageLog.succeeded(logger: logger)
        connectFailures.clear()
        outageGate.succeeded()
    }

    /// Each asked-for probe, until PostgreSQL answers (then statements run again): while the pool's last connect
    /// failed, a connection of the probe's own, 100 ms apart, tells when the server takes connections again, and
    /// then a fresh pool replaces the one backing off (``ReplaceablePostgresClient``: its wait between attempts
    /// grows to 60 s); then `SELECT 1` through the pool, within the operation timeout. Runs inside ``run()``, so it
    /// stops with it.
    private func probeWhenAsked() async {
        for await _ in probeRequests {
            // Once per outage, not per attempt (its TLS context loads the trusted roots).
            let probeConfiguration = try? Self.probeConfiguration(configuration)
            var freshPool = false
            while !Task.isCancelled {
                if !freshPool, connectFailures.lastFailure != nil {
                    guard let probeConfiguration, await serverTakesConnections(probeConfiguration) else {
                        try? await Task.sleep(for: .milliseconds(100))
                        continue
                    }
                    logger.notice("PostgreSQL takes connections again: a fresh connection pool replaces the one waiting to reconnect")
                    pool.replace()
                    freshPool = true
                }
                do {
                    _ = try await withTimeout(configuration.operationTimeout) { [pool, logger] in
                        try await pool.client.query("SELECT 1", logger: logger).collect()
                    }
                    reached()
                    break
                } catch {
                    freshPool = false
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            outageGate.probeEnded()
        }
    }

    /// Whether a connection of the probe's own opens (connect, TLS as configured, authentication) within the
    /// connect timeout; it is closed at once.
    private func serverTakesConnections(_ probeConfiguration: PostgresConnection.Configuration) async -> Bool {
        do {
            let connection = try await PostgresConnection.connect(configuration: probeConfiguration, id: 0, logger: logger)
            try? await connection.close()
            return true
        } catch {
            return false
        }
    }

    /// How many times a fresh connection pool replaced one that was waiting to reconnect (``probeWhenAsked()``).
    var poolReplacements: Int { pool.replacementCount }

    static func sessionStoreError(for error: any Error, notApplied: Bool = false) -> SessionStoreError {
        switch error {
        case let error as SessionStoreError: error
        case let error as PostgresOperationTimeout: .unavailable("\(error)", notApplied: notApplied)
        // PSQLError's description hides details on purpose; the reflection names the cause (refused, closed…).
        default: .unavailable(String(reflecting: error), notApplied: notApplied)
        }
    }

    private static func decode<T>(_ row: PostgresRow, _ decode: (PostgresRow) throws -> T) throws -> T {
        do {
            return try decode(row)
        } catch {
            throw SessionStoreError.corrupt("unexpected row from PostgreSQL: \(String(reflecting: error))")
        }
    }

    private static func integer(_ row: PostgresRow) throws -> Int64 {
        try decode(row) { try $0.decode(Int64.self) }
    }

    private static func bindings(_ text: String) -> PostgresBindings {
        var binds = PostgresBindings(capacity: 2)
        binds.append(text)
        return binds
    }

    private static func clientConfiguration(_ configuration: PostgresSessionStoreConfiguration) -> PostgresClient.Configuration {
        var client: PostgresClient.Configuration
        if let path = configuration.unixSocketPath {
            client = .init(unixSocketPath: path, username: configuration.username, password: configuration.password,
                           database: configuration.database)
        } else {
            let tls: PostgresClient.Configuration.TLS = switch (configuration.tls, configuration.tlsConfiguration) {
            case (_, nil): .disable
            case (.prefer, let settings?): .prefer(settings)
            case (_, let settings?): .require(settings)
            }
            client = .init(host: configuration.host, port: configuration.port, username: configuration.username,
                           password: configuration.password, database: configuration.database, tls: tls)
        }
        client.options.maximumConnections = max(1, configuration.maximumConnections)
        client.options.connectTimeout = configuration.connectTimeout
        return client
    }

    /// The probe's own connection: the pool's server, credentials and TLS mode.
    private static func probeConfiguration(_ configuration: PostgresSessionStoreConfiguration) throws -> PostgresConnection.Configuration {
        var probe: PostgresConnection.Configuration
        if let path = configuration.unixSocketPath {
            probe = .init(unixSocketPath: path, username: configuration.username, password: configuration.password,
                          database: configuration.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS = switch (configuration.tls, configuration.tlsConfiguration) {
            case (_, nil): .disable
            case (.prefer, let settings?): .prefer(try NIOSSLContext(configuration: settings))
            case (_, let settings?): .require(try NIOSSLContext(configuration: settings))
            }
            probe = .init(host: configuration.host, port: configuration.port, username: configuration.username,
                          password: configuration.password, database: configuration.database, tls: tls)
        }
        probe.options.connectTimeout = TimeAmount.nanoseconds(Int64(configuration.connectTimeout.clampedMilliseconds) * 1_000_000)
        return probe
    }
}

/// Whether a statement got as far as its connection. The caller may be answered at the timeout while the
/// operation still waits for a connection (``withTimeout(_:_:)``); abandoning it then also stops it from starting
/// later, so "never reached PostgreSQL" stays true.
private final class StatementStart: Sendable {
    private static let waiting = 0, begun = 1, abandoned = 2
    private let state = Atomic(StatementStart.waiting)

    /// With its connection: true when the statement may run, false when its caller has given up on it.
    func begin() -> Bool {
        state.compareExchange(expected: Self.waiting, desired: Self.begun, ordering: .acquiringAndReleasing).exchanged
    }

    /// After a failure: true when the statement never began (and now never will).
    func abandon() -> Bool {
        let (exchanged, original) = state.compareExchange(
            expected: Self.waiting, desired: Self.abandoned, ordering: .acquiringAndReleasing)
        return exchanged || original == Self.abandoned
    }
}
