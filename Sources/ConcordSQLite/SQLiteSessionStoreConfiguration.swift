/// Settings of a ``SQLiteSessionStore``. The defaults run on one machine with nothing installed.
public struct SQLiteSessionStoreConfiguration: Sendable, Hashable, Codable {
    /// The database file. Several app processes on one machine may share it. Default `concord-sessions.sqlite`
    /// (relative to the working directory; prefer an absolute path). `":memory:"` keeps everything in this
    /// process (one connection, nothing shared).
    public var path: String
    /// The table that holds the sessions (letters, digits and `_`). Default `concord_sessions`.
    public var tableName: String
    /// Connections this process opens to the file. In WAL mode readers run in parallel with the one writer.
    /// Default 4.
    public var connectionCount: Int
    /// How long an operation waits for another connection's (or process's) write lock before failing with
    /// `SessionStoreError.unavailable`. Default 2 s.
    public var busyTimeout: Duration
    /// How often ``SQLiteSessionStore/run()`` deletes expired rows. Default 60 s.
    public var sweepInterval: Duration
    /// The largest payload accepted; bigger ones throw `SessionStoreError.tooLarge`. Default 1 MiB.
    public var maximumPayloadSize: Int

    public init(
        path: String = "concord-sessions.sqlite",
        tableName: String = "concord_sessions",
        connectionCount: Int = 4,
        busyTimeout: Duration = .seconds(2),
        sweepInterval: Duration = .seconds(60),
        maximumPayloadSize: Int = 1 << 20
    ) {
        self.path = path
        self.tableName = tableName
        self.connectionCount = connectionCount
        self.busyTimeout = busyTimeout
        self.sweepInterval = sweepInterval
        self.maximumPayloadSize = maximumPayloadSize
    }
}
