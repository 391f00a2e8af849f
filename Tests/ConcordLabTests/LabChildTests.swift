import Foundation
import Testing

@testable import ConcordLab

#if canImport(Glibc)
import Glibc
#endif

@Suite(.timeLimit(.minutes(3))) struct LabChildTests {
    private func temporaryLog() -> String {
        NSTemporaryDirectory() + "concord-lab-child-\(UUID().uuidString).log"
    }

    @Test func stopEndsTheChildAndUnregistersIt() async throws {
        let registry = ChildRegistry()
        let log = temporaryLog()
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try LabChild.spawn(name: "sleeper", executable: "/bin/sleep", arguments: ["30"], logPath: log, registry: registry)
        #expect(child.isRunning)
        #expect(registry.running == [child.pid])
        #expect(ChildRegistry.isAlive(child.pid))
        await child.stop(grace: .seconds(2))
        #expect(!child.isRunning)
        #expect(registry.running.isEmpty)
        #expect(!ChildRegistry.isAlive(child.pid))
    }

    @Test func terminateAllStopsEveryChildEvenOnesIgnoringSIGTERM() async throws {
        let registry = ChildRegistry()
        let log = temporaryLog()
        defer { try? FileManager.default.removeItem(atPath: log) }
        let polite = try LabChild.spawn(name: "polite", executable: "/bin/sleep", arguments: ["30"], logPath: log, registry: registry)
        // A child that ignores SIGTERM must still be gone after terminateAll (SIGKILL after the grace period).
        let stubborn = try LabChild.spawn(
            name: "stubborn", executable: "/bin/sh", arguments: ["-c", "trap '' TERM; echo armed; sleep 30"], logPath: log,
            registry: registry)
        try await waitUntilArmed(log)
        registry.terminateAll(grace: .milliseconds(300))
        _ = await polite.waitForExit()
        _ = await stubborn.waitForExit()
        #expect(!ChildRegistry.isAlive(polite.pid))
        #expect(!ChildRegistry.isAlive(stubborn.pid))
        #expect(registry.running.isEmpty)
    }

    @Test func outputGoesToTheLogAndTheExitStatusIsKept() async throws {
        let log = temporaryLog()
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try LabChild.spawn(
            name: "echo", executable: "/bin/sh", arguments: ["-c", "echo listening on 127.0.0.1; exit 3"], logPath: log,
            registry: ChildRegistry())
        let status = await child.waitForExit()
        #expect((status >> 8) & 0xff == 3)
        #expect(child.logTail().contains("listening on 127.0.0.1"))
    }

    @Test func theChildGetsOnlyTheStandardStreamsNotTheLabsFiles() async throws {
        let log = temporaryLog()
        defer { try? FileManager.default.removeItem(atPath: log) }
        // A descriptor without close-on-exec, as NIO opens its sockets: the child must not get it.
        let held = open("/dev/null", O_RDONLY)
        try #require(held > 2)
        defer { close(held) }
        let child = try LabChild.spawn(
            name: "fds", executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd; echo done"], logPath: log,
            registry: ChildRegistry())
        _ = await child.waitForExit()
        let listed = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0 != "done" }.compactMap { Int32($0) }
        #expect(listed.contains(1))
        #expect(!listed.contains(held), "the child holds descriptor \(held): \(listed)")
        #expect(listed.allSatisfy { $0 <= 2 }, "descriptors beyond the standard streams: \(listed)")
    }

    @Test func anAdoptedProcessIsStoppedWithItsOwnSignal() async throws {
        let registry = ChildRegistry()
        let log = temporaryLog()
        defer { try? FileManager.default.removeItem(atPath: log) }
        // Stands in for a daemon another tool started (PostgreSQL via pg_ctl): it ignores SIGTERM and stops on
        // SIGINT. Spawned through a second registry, so `registry` knows it only by adoption.
        let daemon = try LabChild.spawn(
            name: "daemon", executable: "/bin/sh", arguments: ["-c", "trap '' TERM; trap 'exit 0' INT; echo armed; while :; do sleep 0.05; done"],
            logPath: log, registry: ChildRegistry())
        try await waitUntilArmed(log)
        registry.adopt(daemon.pid, stopSignal: SIGINT)
        #expect(registry.running == [daemon.pid])
        registry.terminateAll(grace: .seconds(10))
        let status = await daemon.waitForExit()
        #expect(status & 0x7f == 0, "it was killed (wait status \(status)), not stopped by SIGINT")
        #expect((status >> 8) & 0xff == 0)
        #expect(registry.running.isEmpty)

        registry.adopt(12345, stopSignal: SIGINT)
        registry.release(12345)
        #expect(registry.running.isEmpty)
    }

    @Test func aMissingExecutableIsAClearError() {
        let log = temporaryLog()
        defer { try? FileManager.default.removeItem(atPath: log) }  // opened before the spawn fails
        #expect(throws: LabError.self) {
            try LabChild.spawn(name: "ghost", executable: "/nonexistent/concord", arguments: [], logPath: log, registry: ChildRegistry())
        }
    }

    /// Waits (at most 10 s) until the shell child has set its traps and said so: a signal before that would kill it.
    private func waitUntilArmed(_ log: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        func armed() -> Bool { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("armed") }
        while !armed() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try #require(armed(), "the child never said it was armed")
    }
}
