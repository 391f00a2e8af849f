/// The SQL a ``PostgresSessionStore`` runs, built once for its table. Each operation is one statement, so the
/// version check and the write are atomic (a concurrent update of the same row re-checks the version after
/// waiting for the other transaction).
///
/// Time is the server's `now()`, so app servers with skewed clocks still agree on expiry; a row whose
/// `expires_at` has passed is treated as absent everywhere (and a save over it starts again at version 1).
struct PostgresSessionStatements: Sendable {
    static let sweepBatchSize = 1000

    /// Run inside one transaction holding an advisory lock, because concurrent `CREATE TABLE IF NOT EXISTS`
    /// from several app servers can still collide in PostgreSQL's catalog.
    let createSchema: [String]
    let lockSchema: String
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
        let expiry = "now() + $4::bigint * interval '1 millisecond'"
        lockSchema = "SELECT pg_advisory_xact_lock(hashtext($1))"
        createSchema = [
            """
            CREATE TABLE IF NOT EXISTS \(table) (
                id text PRIMARY KEY,
                payload bytea NOT NULL,
                version bigint NOT NULL,
                user_id text,
                expires_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS \((tableName + "_user_id").quotedSQLIdentifier) ON \(table) (user_id) WHERE user_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS \((tableName + "_expires_at").quotedSQLIdentifier) ON \(table) (expires_at)",
        ]
        load = "SELECT payload, version, user_id FROM \(table) WHERE id = $1 AND expires_at > now()"
        version = "SELECT version FROM \(table) WHERE id = $1 AND expires_at > now()"
        let insert = """
            INSERT INTO \(table) AS s (id, payload, version, user_id, expires_at)
            VALUES ($1, $2, 1, $3, \(expiry))
            ON CONFLICT (id) DO UPDATE SET
                payload = excluded.payload, user_id = excluded.user_id, expires_at = excluded.expires_at,
            """
        upsert = """
            \(insert)
                version = CASE WHEN s.expires_at > now() THEN s.version + 1 ELSE 1 END
            RETURNING version
            """
        insertIfAbsent = """
            \(insert)
                version = 1
            WHERE s.expires_at <= now()
            RETURNING version
            """
        updateIfVersion = """
            UPDATE \(table) SET payload = $2, user_id = $3, expires_at = \(expiry), version = version + 1
            WHERE id = $1 AND version = $5 AND expires_at > now()
            RETURNING version
            """
        touch = """
            UPDATE \(table) SET expires_at = now() + $2::bigint * interval '1 millisecond'
            WHERE id = $1 AND expires_at > now() RETURNING version
            """
        delete = "DELETE FROM \(table) WHERE id = $1"
        sessionIDsForUser = "SELECT id FROM \(table) WHERE user_id = $1 AND expires_at > now() ORDER BY id"
        deleteAllForUser = """
            WITH deleted AS (DELETE FROM \(table) WHERE user_id = $1 RETURNING expires_at > now() AS live)
            SELECT count(*) FILTER (WHERE live) FROM deleted
            """
        sweepBatch = """
            WITH deleted AS (
                DELETE FROM \(table) WHERE ctid IN
                    (SELECT ctid FROM \(table) WHERE expires_at <= now() LIMIT \(Self.sweepBatchSize))
                RETURNING 1
            )
            SELECT count(*) FROM deleted
            """
    }
}
