/// The SQL a ``SQLiteSessionStore`` runs, built once for its table. Each operation is one statement, so the
/// version check and the write happen under one lock of the file.
///
/// Time is `unixepoch('subsec')` in milliseconds, read once per statement; a row whose `expires_at` has passed
/// is treated as absent everywhere (and a save over it starts again at version 1).
struct SQLiteSessionStatements: Sendable {
    static let sweepBatchSize = 500
    private static let now = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"

    let createSchema: [String]
    let load: String
    let version: String
    /// Binds: id, payload, user id, TTL ms. Writes whatever is there (last writer wins).
    let upsert: String
    /// Binds: id, payload, user id, TTL ms. Writes only when no live row exists.
    let insertIfAbsent: String
    /// Binds: id, payload, user id, TTL ms, expected version. Writes only over that live version.
    let updateIfVersion: String
    let touch: String
    let delete: String
    let sessionIDsForUser: String
    let deleteAllForUser: String
    let sweepBatch: String

    init(tableName: String) {
        let table = tableName.quotedSQLIdentifier
        let now = Self.now
        createSchema = [
            """
            CREATE TABLE IF NOT EXISTS \(table) (
                id TEXT PRIMARY KEY NOT NULL,
                payload BLOB NOT NULL,
                version INTEGER NOT NULL,
                user_id TEXT,
                expires_at INTEGER NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS \((tableName + "_user_id").quotedSQLIdentifier) ON \(table) (user_id) WHERE user_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS \((tableName + "_expires_at").quotedSQLIdentifier) ON \(table) (expires_at)",
        ]
        load = "SELECT payload, version, user_id FROM \(table) WHERE id = ?1 AND expires_at > \(now)"
        version = "SELECT version FROM \(table) WHERE id = ?1 AND expires_at > \(now)"
        // SQLite binds an empty blob as NULL; coalesce keeps payload NOT NULL.
        let insert = """
            INSERT INTO \(table) AS s (id, payload, version, user_id, expires_at)
            VALUES (?1, coalesce(?2, x''), 1, ?3, \(now) + ?4)
            ON CONFLICT (id) DO UPDATE SET
                payload = excluded.payload, user_id = excluded.user_id, expires_at = excluded.expires_at,
            """
        upsert = """
            \(insert)
                version = CASE WHEN s.expires_at > \(now) THEN s.version + 1 ELSE 1 END
            RETURNING version
            """
        insertIfAbsent = """
            \(insert)
                version = 1
            WHERE s.expires_at <= \(now)
            RETURNING version
            """
        updateIfVersion = """
            UPDATE \(table) SET
                payload = coalesce(?2, x''), user_id = ?3, expires_at = \(now) + ?4, version = version + 1
            WHERE id = ?1 AND version = ?5 AND expires_at > \(now)
            RETURNING version
            """
        touch = "UPDATE \(table) SET expires_at = \(now) + ?2 WHERE id = ?1 AND expires_at > \(now) RETURNING 1"
        delete = "DELETE FROM \(table) WHERE id = ?1"
        sessionIDsForUser = "SELECT id FROM \(table) WHERE user_id = ?1 AND expires_at > \(now) ORDER BY id"
        deleteAllForUser = "DELETE FROM \(table) WHERE user_id = ?1 RETURNING expires_at > \(now) AS live"
        sweepBatch = """
            DELETE FROM \(table) WHERE id IN
                (SELECT id FROM \(table) WHERE expires_at <= \(now) LIMIT \(Self.sweepBatchSize))
            RETURNING 1
            """
    }
}
