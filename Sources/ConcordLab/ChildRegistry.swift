import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Every child process the lab has started and not yet seen exit, kept where a signal handler can reach it, so
/// that Ctrl-C, SIGTERM or a failure never leaves an orphan behind.
public final class ChildRegistry: Sendable {
    /// The one registry of this process (signal handlers cannot carry context).
    public static let shared = ChildRegistry()

    /// Each process and the signal that asks it to stop.
    private let pids = Mutex<[pid_t: Int32]>([:])

    public init() {}

    func add(_ pid: pid_t) { pids.withLock { $0[pid] = SIGTERM } }
    func remove(_ pid: pid_t) { _ = pids.withLock { $0.removeValue(forKey: pid) } }

    /// Also stops `pid`, which this process did not spawn itself (a daemon a tool started for it, such as
    /// PostgreSQL's postmaster started by `pg_ctl`), with `stopSignal` (PostgreSQL: SIGINT, its fast shutdown).
    public func adopt(_ pid: pid_t, stopSignal: Int32) { pids.withLock { $0[pid] = stopSignal } }

    /// Forgets an adopted process (once it has been stopped the normal way).
    public func release(_ pid: pid_t) { remove(pid) }

    /// The children still registered.
    public var running: [pid_t] { pids.withLock { Array($0.keys) } }

    /// Stops every registered child: SIGTERM, up to `grace` for them to exit, then SIGKILL. Blocking; safe to
    /// call from a signal handler's dispatch queue.
    public func terminateAll(grace: Duration = .seconds(3)) {
        let signals = pids.withLock { $0 }
        let children = Array(signals.keys)
        guard !children.isEmpty else { return }
        for (pid, signal) in signals { kill(pid, signal) }
        let deadline = ContinuousClock.now.advanced(by: grace)
        while ContinuousClock.now < deadline, children.contains(where: Self.isAlive) {
            usleep(20_000)
        }
        for pid in children where Self.isAlive(pid) { kill(pid, SIGKILL) }
        pids.withLock { state in for pid in children { state.removeValue(forKey: pid) } }
    }

    /// Whether `pid` is still running (a zombie, dead but not yet reaped, counts as gone).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Installs SIGINT and SIGTERM handlers that stop every child and then exit with 128 + the signal.
    /// Returns the sources; keep them alive for as long as the handlers should stay.
    public func installSignalHandlers(onSignal: @escaping @Sendable (Int32) -> Void = { _ in }) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                onSignal(number)
                terminateAll()
                exit(128 + number)
            }
            source.resume()
            return source
        }
    }
}
