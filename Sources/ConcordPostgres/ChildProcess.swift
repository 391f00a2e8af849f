#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConcordSessions
import NIOPosix

/// Runs a program to completion with `posix_spawn` and a blocking `waitpid` on NIO's thread pool.
///
/// Not Foundation's `Process`: on Linux its exit notification was observed to go missing for a `runuser`
/// child (left a zombie, the caller waiting forever). `pg_ctl start` leaves a daemon behind, which is fine here:
/// only the direct child is waited for.
enum ChildProcess {
    /// - Returns: the exit status (or 128 + signal number).
    static func run(_ executable: String, _ arguments: [String], outputPath: String) async throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours goes to the child: NIO opens its sockets without close-on-exec, and `pg_ctl start`
        // leaves a server daemon behind that would keep every inherited socket open — a test backend's listening
        // socket stayed in LISTEN (connections accepted, never answered) for as long as such a server lived.
        InheritedDescriptors.closeAllButStandardStreams(in: &actions)

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw LocalPostgresServerError("cannot run \(executable): \(String(cString: strerror(spawned)))")
        }
        let child = pid
        return try await NIOThreadPool.singleton.runIfActive {
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 {
                guard errno == EINTR else { return -1 }
            }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (the C macros are not imported).
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : 128 + signal
        }
    }
}
