#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Keeps this process's open files out of the children it starts.
///
/// SwiftNIO opens sockets without close-on-exec, so a child started with `posix_spawn` or Foundation's `Process`
/// gets every one of them: a PostgreSQL server started by a test held 172 of the test process's descriptors, and a
/// stopped test backend's listening socket stayed in LISTEN (connections accepted, never answered) for as long as
/// such a child lived. Lives here because every module that starts children already depends on this one.
public enum InheritedDescriptors {
    /// Sets close-on-exec on every descriptor above stderr (it changes nothing for this process). Call it right
    /// before `Process.run()`; a descriptor another thread opens in between can still leak.
    public static func markCloseOnExec() {
        #if os(Linux)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
        #endif
    }

    #if canImport(Glibc)
    /// Adds "close every descriptor from 3 up" to a `posix_spawn` action list (glibc 2.34+; without it, falls back
    /// to ``markCloseOnExec()``).
    public static func closeAllButStandardStreams(in actions: inout posix_spawn_file_actions_t) {
        if let closeFrom { _ = closeFrom(&actions, 3) } else { markCloseOnExec() }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not import.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()
    #endif
}
