import ConcordSessions
import SQLiteNIO
import Synchronization

/// The connections a ``SQLiteSessionStore`` holds to its file: opened on first use (a failed open is retried
/// by the next operation) and handed out round-robin. SQLiteNIO opens them in serialized mode, so one
/// connection may run statements from several tasks.
final class SQLiteConnections: Sendable {
    private let setup: SessionStoreSetup<[SQLiteConnection]>
    private let nextIndex = Atomic<Int>(0)

    /// - Parameter open: opens the connections and prepares the file (pragmas, schema); runs on first use.
    init(open: @escaping @Sendable () async throws -> [SQLiteConnection]) {
        self.setup = SessionStoreSetup(open)
    }

    /// One open connection (opening them all first if needed).
    func next() async throws -> SQLiteConnection {
        let connections = try await setup.value()
        let index = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
        return connections[Int(index.magnitude % UInt(connections.count))]
    }

    /// Closes every connection. Call it once no operation is running; later operations fail.
    func close() async {
        let connections = await setup.tearDown() ?? []
        // In a task of its own: SQLiteNIO refuses work in a cancelled task (as `run()` is when it ends), and a
        // connection left open traps when it is deinitialised.
        await Task {
            for connection in connections { try? await connection.close() }
        }.value
    }
}
