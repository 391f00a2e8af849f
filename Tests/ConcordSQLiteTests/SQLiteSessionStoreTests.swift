import ConcordSessions
import ConcordSessionsTesting
import Foundation
import SQLiteNIO
import Testing

@testable import ConcordSQLite

/// Opens a store on `path`, lends it to `body`, and closes it afterwards (also when `body` throws).
func withSQLiteStore<T>(
    _ configuration: SQLiteSessionStoreConfiguration,
    clock: any Clock<Duration> = ContinuousClock(),
    _ body: (SQLiteSessionStore) async throws -> T
) async throws -> T {
    let store = SQLiteSessionStore(configuration: configuration, clock: clock)
    do {
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

/// Runs `sql` on a connection of its own to the file at `path` (what another process would see).
func rawQuery(_ path: String, _ sql: String) async throws -> [SQLiteRow] {
    let connection = try await SQLiteConnection.open(storage: .file(path: path))
    do {
        let rows = try await connection.query(sql)
        try await connection.close()
        return rows
    } catch {
        try? await connection.close()
        throw error
    }
}

@Suite("SQLiteSessionStore", .timeLimit(.minutes(3)))
struct SQLiteSessionStoreTests {
    @Test(arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        try await withTemporaryDirectory { directory in
            let configuration = SQLiteSessionStoreConfiguration(path: directory + "/sessions.sqlite")
            let options = SessionStoreConformance.Options(
                shortTTL: .seconds(1), expiryMargin: .milliseconds(300),
                maximumPayloadSize: configuration.maximumPayloadSize)
            try await SessionStoreConformance.run(check, options: options) { body in
                try await withSQLiteStore(configuration) { try await body($0) }
            }
        }
    }

    @Test func createsTheSchemaInWALModeOnFirstUse() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/sessions.sqlite"
            try await withSQLiteStore(.init(path: path, tableName: "web sessions")) { store in
                #expect(!FileManager.default.fileExists(atPath: path), "nothing is opened before the first operation")
                _ = try await store.save(StoredSession(id: "a", payload: [1], userID: "u"), ttl: .seconds(60), expectedVersion: nil)
            }
            let objects = try await rawQuery(path, "SELECT name FROM sqlite_master ORDER BY name").compactMap { $0.column("name")?.string }
            #expect(objects.contains("web sessions"))
            #expect(objects.contains("web sessions_user_id"))
            #expect(objects.contains("web sessions_expires_at"))
            let mode = try await rawQuery(path, "PRAGMA journal_mode").first?.columns.first?.data.string
            #expect(mode == "wal")
        }
    }

    /// Two stores with their own connections on one file act as two app processes would.
    @Test func twoStoresOnOneFileSeeEachOtherAndLoseNoUpdate() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = SQLiteSessionStoreConfiguration(path: directory + "/shared.sqlite", connectionCount: 2)
            try await withSQLiteStore(configuration) { first in
                try await withSQLiteStore(configuration) { second in
                    _ = try await first.save(StoredSession(id: "cart", payload: counterPayload(0), userID: "ann"), ttl: .seconds(60), expectedVersion: 0)
                    let incrementsPerWriter = 25
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for store in [first, second, first, second] {
                            group.addTask { try await increment("cart", times: incrementsPerWriter, in: store) }
                        }
                        try await group.waitForAll()
                    }
                    let final = try #require(try await second.load(id: "cart"))
                    #expect(counterValue(final.payload) == 4 * incrementsPerWriter)
                    #expect(final.version == UInt64(4 * incrementsPerWriter + 1))
                    #expect(try await first.sessionIDs(forUser: "ann") == ["cart"])
                    try await first.delete(id: "cart")
                    #expect(try await second.load(id: "cart") == nil)
                }
            }
        }
    }

    /// A file that is not a database is the store's failure (503 in the app), not a corrupt record (500).
    @Test func aFileThatIsNotADatabaseIsUnavailable() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/junk.db"
            try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: path))
            try await withSQLiteStore(.init(path: path)) { store in
                let error = await #expect(throws: SessionStoreError.self) { _ = try await store.load(id: "a") }
                #expect(error?.isUnavailable == true && "\(error!)".contains("not an SQLite database"), "\(String(describing: error))")
            }
        }
    }

    /// The file deleted, or replaced by another, under a running store is noticed (and logged once): nodes would
    /// otherwise go on with different files without an error.
    @Test func aDeletedOrReplacedFileIsNoticed() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/sessions.sqlite"
            try await withSQLiteStore(.init(path: path)) { store in
                #expect(store.checkFile() == nil, "nothing opened yet")
                _ = try await store.save(StoredSession(id: "a", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
                #expect(store.checkFile() == nil)
                try FileManager.default.moveItem(atPath: path, toPath: path + ".old")
                #expect(store.checkFile() == .deleted)
                try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
                #expect(store.checkFile() == .replaced)
                try FileManager.default.removeItem(atPath: path)
                try FileManager.default.moveItem(atPath: path + ".old", toPath: path)
                #expect(store.checkFile() == nil, "the same file back under its name")
            }
        }
    }

    /// Another connection holding the write lock makes operations wait at most `busyTimeout`, then fail as
    /// unavailable; once the lock is released they succeed again.
    @Test func aHeldWriteLockFailsFastAsUnavailableAndThenRecovers() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/locked.sqlite"
            try await withSQLiteStore(.init(path: path, busyTimeout: .milliseconds(200))) { store in
                _ = try await store.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
                let locker = try await SQLiteConnection.open(storage: .file(path: path))
                do {
                    _ = try await locker.query("PRAGMA busy_timeout = 1000")
                    _ = try await locker.query("BEGIN IMMEDIATE")
                    let started = ContinuousClock.now
                    let error = await #expect(throws: SessionStoreError.self) {
                        _ = try await store.save(StoredSession(id: "s", payload: [2]), ttl: .seconds(60), expectedVersion: nil)
                    }
                    // The lock was never granted: the save did not run, and the error says so.
                    #expect(error?.isUnavailableAndNotApplied == true, "\(String(describing: error))")
                    #expect(ContinuousClock.now - started < .seconds(5), "the busy timeout bounds the wait")
                    // Readers are not blocked by a writer in WAL mode.
                    #expect(try await store.load(id: "s")?.payload == [1])
                    _ = try await locker.query("COMMIT")
                    try await locker.close()
                } catch {
                    try? await locker.close()
                    throw error
                }
                #expect(try await store.save(StoredSession(id: "s", payload: [3]), ttl: .seconds(60), expectedVersion: 1) == 2)
            }
        }
    }

    /// An empty path is a private database per connection, as `:memory:` is: the store opens one connection
    /// (with four, each had its own database and every operation after the first failed "no such table").
    @Test func anEmptyPathIsOnePrivateDatabase() async throws {
        try await withSQLiteStore(.init(path: "")) { store in
            for id in ["a", "b", "c", "d", "e"] {
                let version = try await store.save(StoredSession(id: id, payload: [1]), ttl: .seconds(60), expectedVersion: 0)
                #expect(version == 1)
            }
            for id in ["a", "b", "c", "d", "e"] {
                let loaded = try await store.load(id: id)
                #expect(loaded?.payload == [1])
            }
        }
        #expect(throws: SQLiteSessionStoreConfigurationError.self) { try SQLiteSessionStoreConfiguration(path: "").checkFile(shared: true) }
        #expect(throws: SQLiteSessionStoreConfigurationError.self) { try SQLiteSessionStoreConfiguration(path: ":memory:").checkFile(shared: true) }
        try SQLiteSessionStoreConfiguration(path: ":memory:").checkFile()
    }

    /// The check a library user runs at start (`concord app` runs it too): the reason, or nil once the store answers.
    @Test func checkAnswersSaysWhyAStoreCannotWork() async throws {
        try await withTemporaryDirectory { directory in
            try await withSQLiteStore(.init(path: directory + "/missing/sessions.sqlite")) { store in
                let error = await store.checkAnswers()
                #expect(error?.isUnavailable == true && "\(error!)".contains("does not exist"), "\(String(describing: error))")
            }
            try await withSQLiteStore(.init(path: directory + "/sessions.sqlite")) { store in
                let error = await store.checkAnswers()
                #expect(error == nil, "\(String(describing: error))")
            }
        }
    }

    @Test func aFileThatCannotBeOpenedIsUnavailableUntilItCan() async throws {
        try await withTemporaryDirectory { directory in
            let missing = directory + "/not-yet"
            try await withSQLiteStore(.init(path: missing + "/sessions.sqlite")) { store in
                let error = await #expect(throws: SessionStoreError.self) { _ = try await store.load(id: "s") }
                #expect(error?.isUnavailable == true && "\(error!)".contains("the directory \(missing) does not exist"),
                        "\(String(describing: error))")
                try FileManager.default.createDirectory(atPath: missing, withIntermediateDirectories: false)
                #expect(try await store.save(StoredSession(id: "s", payload: [7]), ttl: .seconds(60), expectedVersion: 0) == 1)
                #expect(try await store.load(id: "s")?.payload == [7])
            }
        }
    }

    @Test func runSweepsExpiredRowsOnTheInjectedClock() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/sweep.sqlite"
            let clock = ManualClock()
            try await withSQLiteStore(.init(path: path, sweepInterval: .seconds(30)), clock: clock) { store in
                for index in 0..<3 {
                    _ = try await store.save(StoredSession(id: "old\(index)", payload: [1]), ttl: .milliseconds(1), expectedVersion: nil)
                }
                _ = try await store.save(StoredSession(id: "live", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
                try await Task.sleep(for: .milliseconds(20))  // the short TTL passes in wall time
                #expect(try await rowCount(path) == 4, "expired rows stay until a sweep")
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await store.run() }
                    try await waitUntil { clock.sleeperCount == 1 }
                    clock.advance(by: .seconds(30))
                    try await waitUntil { try await rowCount(path) == 1 }
                    #expect(try await store.load(id: "live") != nil)
                    group.cancelAll()  // run() ends and closes the store
                }
                let error = await #expect(throws: SessionStoreError.self) { _ = try await store.load(id: "live") }
                #expect(error?.isUnavailable == true, "a closed store is unavailable")
            }
        }
    }
}

private func rowCount(_ path: String) async throws -> Int? {
    try await rawQuery(path, "SELECT count(*) AS n FROM concord_sessions").first?.column("n")?.integer
}


func counterPayload(_ value: Int) -> [UInt8] { Array(String(value).utf8) }
func counterValue(_ payload: [UInt8]) -> Int? { Int(String(decoding: payload, as: UTF8.self)) }

/// Adds one to the counter in `id`, `times` times, each as load → save(expectedVersion) retried on conflict.
func increment(_ id: String, times: Int, in store: any SessionStore) async throws {
    for _ in 0..<times {
        var attempts = 0
        while true {
            attempts += 1
            let current = try #require(try await store.load(id: id))
            let next = try #require(counterValue(current.payload)) + 1
            do {
                _ = try await store.save(
                    StoredSession(id: id, payload: counterPayload(next), userID: current.userID), ttl: .seconds(60),
                    expectedVersion: current.version)
                break
            } catch let error as SessionStoreError where error.isConflict && attempts < 1000 {
                continue
            }
        }
    }
}
