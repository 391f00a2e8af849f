import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// When started by the lab (env `CONCORD_PARENT_PID`), shuts this process down gracefully if the lab is gone,
/// so even a lab killed with SIGKILL leaves no orphan node behind.
public struct ParentWatchService: Service {
    public let parentPID: Int32

    public init(parentPID: Int32) { self.parentPID = parentPID }

    public func run() async throws {
        var signalled = false
        // Returns only when the group's graceful shutdown reaches this service (services stop in reverse order).
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            if !signalled, getppid() != parentPID {
                // SIGTERM to ourselves: the service group's signal handling then shuts everything down in order.
                signalled = true
                kill(getpid(), SIGTERM)
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
