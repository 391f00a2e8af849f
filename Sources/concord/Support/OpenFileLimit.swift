#if canImport(Glibc)
import Glibc
#endif

/// The process's open-file limit (`RLIMIT_NOFILE`). Every client and backend connection is a descriptor, and a
/// service manager's soft default is small (systemd: 1024, with a hard limit of 524288), so `concord proxy`,
/// `concord app` and `concord lab` raise the soft limit to the hard one at start, as Go programs and HAProxy do.
enum OpenFileLimit {
    /// Raises the soft limit to the hard one; returns the soft limit in force afterwards (nil if unreadable).
    @discardableResult
    static func raise() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }
}
