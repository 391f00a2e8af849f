import ConcordLab
import ConcordSessions
import Foundation
import Testing

@testable import ConcordSQLite

/// Several app processes on one machine sharing one SQLite file (the lab's `store` strategy with nothing
/// installed): child processes (this test binary again, running only ``counterWriter()``) and this process
/// increment one counter with versioned writes at the same time, and no increment is lost.
@Suite("SQLite file shared by processes", .timeLimit(.minutes(3)))
struct SQLiteMultiProcessTests {
    static let sharedFileVariable = "CONCORD_SQLITE_SHARED_FILE"
    static let incrementsPerProcess = 40

    /// In a child process (``sharedFileVariable`` set) this is one of the writers; in a normal run it checks
    /// the same loop alone on a file of its own.
    @Test func counterWriter() async throws {
        if let path = ProcessInfo.processInfo.environment[Self.sharedFileVariable] {
            try await withSQLiteStore(.init(path: path, connectionCount: 1, busyTimeout: .seconds(10))) { store in
                try await increment("counter", times: Self.incrementsPerProcess, in: store)
            }
            return
        }
        try await withTemporaryDirectory { directory in
            try await withSQLiteStore(.init(path: directory + "/alone.sqlite")) { store in
                _ = try await store.save(StoredSession(id: "counter", payload: counterPayload(0)), ttl: .seconds(60), expectedVersion: 0)
                try await increment("counter", times: Self.incrementsPerProcess, in: store)
                #expect(try await store.load(id: "counter").map { counterValue($0.payload) } == Self.incrementsPerProcess)
            }
        }
    }

    @Test func processesSharingOneFileLoseNoUpdate() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/shared.sqlite"
            let configuration = SQLiteSessionStoreConfiguration(path: path, busyTimeout: .seconds(10))
            try await withSQLiteStore(configuration) { store in
                _ = try await store.save(StoredSession(id: "counter", payload: counterPayload(0)), ttl: .seconds(120), expectedVersion: 0)
                let children = try (0..<2).map { index in try startWriterProcess(sharedFile: path, log: directory + "/child\(index).log") }
                defer { for child in children { child.send(SIGKILL) } }  // on failure; no-op once exited
                try await increment("counter", times: Self.incrementsPerProcess, in: store)
                for (index, child) in children.enumerated() {
                    let status = try await waitForExit(child, within: .seconds(60))
                    let log = (try? String(contentsOfFile: directory + "/child\(index).log", encoding: .utf8)) ?? ""
                    #expect(status == 0, "child \(index) failed:\n\(log.suffix(3000))")
                }
                let counter = try #require(try await store.load(id: "counter"))
                #expect(counterValue(counter.payload) == 3 * Self.incrementsPerProcess)
                #expect(counter.version == UInt64(3 * Self.incrementsPerProcess + 1))
            }
        }
    }

    /// This test binary again, running only ``counterWriter()`` against `sharedFile`. Spawned and reaped like the
    /// lab's processes (`LabChild`), not with Foundation's `Process`, whose exit notification went missing in a
    /// loaded run of another test here.
    private func startWriterProcess(sharedFile: String, log: String) throws -> LabChild {
        try LabChild.spawn(
            name: "writer", executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
            arguments: ["--testing-library", "swift-testing", "--filter", "SQLiteMultiProcessTests/counterWriter"],
            environment: [Self.sharedFileVariable: sharedFile], logPath: log, registry: ChildRegistry())
    }

    /// The exit code of `child`; stops it (and fails) if it runs longer than `limit`.
    private func waitForExit(_ child: LabChild, within limit: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + limit
        while child.isRunning {
            guard ContinuousClock.now < deadline else {
                await child.stop(grace: .seconds(2))
                Issue.record("child process still running after \(limit)")
                return -1
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return child.exitCode ?? -1
    }
}
