import CConcordSystem
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Whether `concord proxy` pins its event-loop threads to CPUs (`cpuAffinity` in YAML, `--cpu-affinity`).
public enum CPUAffinity: String, Sendable, Hashable, Codable, SettingChoice, CustomStringConvertible {
    /// Loop *i* runs only on the *i*-th CPU the process may use (round-robin when there are more loops than CPUs),
    /// like nginx's `worker_cpu_affinity auto`. The default: without it the scheduler can put two busy loops on one
    /// CPU, where each waits out the other's time slice (≈ 4 ms) while the other CPU runs something else — on a
    /// 2-core machine the proxy's p99 at moderate load was 3–41 ms instead of ≈ 0.55 ms (docs/proxy.md).
    case auto
    /// Loops run wherever the scheduler puts them.
    case off

    public var description: String { rawValue }
}

/// Pins each event loop of a group to one CPU (Linux `sched_setaffinity` on the loop's own thread).
///
/// Only the process that owns its loops should do this (`concord proxy` does, for the loops it serves on); a
/// library that shares `MultiThreadedEventLoopGroup.singleton` with other code leaves it alone.
public enum EventLoopCPUAffinity {
    /// The CPUs the calling thread may run on, ascending (empty where that cannot be read). From a thread nobody
    /// pinned, that is the process's set.
    public static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = Int(c_concord_allowed_cpus(&cpus, Int32(cpus.count)))
        guard count > 0 else { return [] }
        return cpus.prefix(min(count, cpus.count)).map(Int.init)
    }

    /// Pins loop *i* of `group` to `allowedCPUs()[i % count]`. Returns the CPU of each loop, in the group's order,
    /// or `nil` (after one warning) when the platform or the kernel does not allow it; the loops then run as before.
    @discardableResult
    public static func pin(_ group: any EventLoopGroup, logger: Logger) async -> [Int]? {
        let cpus = allowedCPUs()
        guard !cpus.isEmpty else {
            logger.warning("cpu affinity: cannot read the CPUs this process may use; event loops stay unpinned")
            return nil
        }
        var assigned: [Int] = []
        for (index, loop) in group.makeIterator().enumerated() {
            let cpu = cpus[index % cpus.count]
            // On the loop's own thread: the call pins the calling thread.
            let result = try? await loop.submit { c_concord_pin_current_thread(Int32(cpu)) }.get()
            guard result == 0 else {
                let reason = result.map { String(cString: strerror($0)) } ?? "the loop is shut down"
                logger.warning("cpu affinity: cannot pin event loop \(index) to CPU \(cpu) (\(reason)); loops stay as they are")
                return nil
            }
            assigned.append(cpu)
        }
        return assigned
    }
}
