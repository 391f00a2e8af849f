import ConcordSessions
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One child process started by the lab (an app node, the proxy), its output appended to a log file.
///
/// Started with `posix_spawn` in its own process group (so a terminal's Ctrl-C reaches only the lab, which then
/// stops its children in order) and with SIGINT/SIGTERM/SIGHUP reset to their defaults (the lab ignores them
/// itself while its handlers run, and ignored signals would otherwise be inherited). A dedicated thread reaps it,
/// and it stays in the ``ChildRegistry`` until it has exited.
public final class LabChild: Sendable {
    /// A name for logs ("node-1", "proxy").
    public let name: String
    public let pid: pid_t
    /// Where the child's standard output and error go.
    public let logPath: String

    private struct State {
        var exitStatus: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    private let state = Mutex(State())
    private let registry: ChildRegistry

    private init(name: String, pid: pid_t, logPath: String, registry: ChildRegistry) {
        self.name = name
        self.pid = pid
        self.logPath = logPath
        self.registry = registry
    }

    /// Starts `executable` with `arguments`. `environment` entries are added to (or replace) the lab's own.
    /// `openFileLimit`: the child runs under `ulimit -n` (soft and hard, so it cannot raise it; a shell sets it and
    /// then becomes the child, same process) — how tests run a server out of descriptors.
    public static func spawn(
        name: String,
        executable: String,
        arguments: [String],
        environment: [String: String] = [:],
        logPath: String,
        openFileLimit: Int? = nil,
        registry: ChildRegistry = .shared
    ) throws -> LabChild {
        let (executable, arguments) = openFileLimit.map { limit in
            ("/bin/sh", ["-c", "ulimit -n \(limit) && exec \"$0\" \"$@\"", executable] + arguments)
        } ?? (executable, arguments)
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        InheritedDescriptors.closeAllButStandardStreams(in: &fileActions)  // the lab's sockets stay in the lab

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &fileActions, &attributes, argv, envp)
        guard result == 0 else {
            throw LabError.childFailed("cannot start \(name) (\(executable)): \(String(cString: strerror(result)))")
        }
        let child = LabChild(name: name, pid: pid, logPath: logPath, registry: registry)
        registry.add(pid)
        let spawned = pid
        let reaper = Thread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) == -1 && errno == EINTR {}
            child.finish(status: status)
        }
        reaper.name = "concord-lab-reaper-\(pid)"
        reaper.start()
        return child
    }

    private func finish(status: Int32) {
        registry.remove(pid)
        let waiters = state.withLock { state in
            state.exitStatus = status
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    /// The raw wait status once the child has exited, `nil` while it runs.
    public var exitStatus: Int32? { state.withLock { $0.exitStatus } }

    public var isRunning: Bool { exitStatus == nil }

    /// The exit code once the child has exited (128 + the signal number if a signal ended it), as a shell shows it.
    public var exitCode: Int32? {
        exitStatus.map { status in status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
    }

    /// Sends `signal` (SIGTERM, SIGKILL, …) unless the child has already exited.
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits for the child to exit and returns its wait status.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let done: Int32? = state.withLock { state in
                if let status = state.exitStatus { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Waits at most `bound` for the child to exit and returns its wait status; after `bound` it is stopped
    /// (``stop(grace:)`` with `stopGrace`) and the result is `nil`.
    public func waitForExit(within bound: Duration, stopGrace: Duration) async -> Int32? {
        // Whichever ends first cancels the other; a timeout stops the child, which ends the wait for its exit too.
        let timedOut = await withTaskGroup(of: Bool.self) { group in
            group.addTask { _ = await self.waitForExit(); return false }
            group.addTask {
                try? await Task.sleep(for: bound)
                guard !Task.isCancelled else { return false }
                await self.stop(grace: stopGrace)
                return true
            }
            var timedOut = false
            for await result in group {
                timedOut = timedOut || result
                group.cancelAll()
            }
            return timedOut
        }
        return timedOut ? nil : exitStatus
    }

    /// Stops the child: SIGTERM, then SIGKILL if it has not exited within `grace`. Returns once it has exited.
    public func stop(grace: Duration = .seconds(5)) async {
        guard isRunning else { return }
        send(SIGTERM)
        let deadline = ContinuousClock.now.advanced(by: grace)
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        send(SIGKILL)
        _ = await waitForExit()
    }

    /// The last `count` lines of the child's log, to explain a failure.
    public func logTail(_ count: Int = 12) -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "(no output)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }

    /// Peak resident set size (VmHWM) in bytes, from /proc; `nil` once the process is gone.
    public func peakResidentBytes() -> Int? {
        guard isRunning, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        return nil
    }
}
