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
                defer { for child in children where child.isRunning { child.terminate() } }
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

    /// This test binary again, running only ``counterWriter()`` against `sharedFile`.
    private func startWriterProcess(sharedFile: String, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["--testing-library", "swift-testing", "--filter", "SQLiteMultiProcessTests/counterWriter"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.sharedFileVariable] = sharedFile
        process.environment = environment
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        InheritedDescriptors.markCloseOnExec()
        try process.run()
        return process
    }

    /// The exit status of `process`; terminates it (and fails) if it runs longer than `limit`.
    private func waitForExit(_ process: Process, within limit: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + limit
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                process.terminate()
                Issue.record("child process still running after \(limit)")
                return -1
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }
}
