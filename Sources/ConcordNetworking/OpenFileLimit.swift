#if canImport(Glibc)
import Glibc
#endif

/// The process's open-file limit (`RLIMIT_NOFILE`). Every client and backend connection is a descriptor, and a
/// service manager's soft default is small (systemd: 1024, with a hard limit of 524288), so `concord proxy`,
/// `concord app` and `concord lab` raise the soft limit to the hard one at start, as Go programs and HAProxy do.
/// Here because ``LocalResourceFailure`` names the limit when it runs out.
public enum OpenFileLimit {
    /// The soft limit in force (nil if unreadable).
    public static var current: UInt64? { read().map { UInt64($0.rlim_cur) } }

    /// Raises the soft limit to the hard one; returns the soft limit in force afterwards (nil if unreadable).
    @discardableResult
    public static func raise() -> UInt64? {
        guard var limit = read() else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            let before = limit.rlim_cur
            limit.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) != 0 { limit.rlim_cur = before }
        }
        return UInt64(limit.rlim_cur)
    }

    private static func read() -> rlimit? {
        var limit = rlimit()
        return getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 ? limit : nil
    }
}
