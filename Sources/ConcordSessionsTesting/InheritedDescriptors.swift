#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Keeps this process's open files out of the children it starts.
///
/// SwiftNIO opens sockets without close-on-exec, and Foundation's `Process` hands every such descriptor to the
/// child: a `redis-server` started by one test was seen holding another test's sockets (a backend's listening
/// socket stayed in LISTEN after the backend stopped — connections accepted, never answered — for as long as that
/// server lived). Call ``markCloseOnExec()`` right before `Process.run()`; descriptors opened between the two calls
/// by other threads can still leak, which is rare and no worse than before.
public enum InheritedDescriptors {
    /// Sets close-on-exec on every descriptor above stderr. It changes nothing for this process.
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
}
