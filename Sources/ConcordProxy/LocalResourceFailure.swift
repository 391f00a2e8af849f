import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A connect that failed on this machine — out of file descriptors (`EMFILE`: the process's limit; `ENFILE`: the
/// system's), socket buffers or memory (`ENOBUFS`, `ENOMEM`) — not at the backend. (`EADDRNOTAVAIL` is left out: it
/// is also what an address this host cannot reach at all gives, e.g. an IPv6 backend without IPv6, and such a backend
/// must go down.)
/// It says nothing about the backend: it is no passive health failure (before 2026-12-02 a proxy out of descriptors
/// marked every healthy backend down and went on answering 503 after the descriptors were back), and moving the
/// request to the key's next node would fail the same way. The client gets 503; ``LocalResourceAlarm`` tells the
/// operator.
struct LocalResourceFailure: Error, CustomStringConvertible {
    let errnoCode: Int32

    /// The local failure inside `error` (NIO's `IOError`, or the first of a `NIOConnectionError`'s attempts), if any.
    init?(_ error: any Error) {
        let code: Int32
        switch error {
        case let error as IOError: code = error.errnoCode
        case let error as NIOConnectionError:
            guard let first = error.connectionErrors.first, let inner = LocalResourceFailure(first.error) else { return nil }
            code = inner.errnoCode
        default: return nil
        }
        guard [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) else { return nil }
        errnoCode = code
    }

    var description: String {
        switch errnoCode {
        case EMFILE:
            "out of file descriptors (EMFILE: this process's limit, \(OpenFileLimit.current.map(String.init) ?? "unknown")); raise it "
                + "(ulimit -n, systemd LimitNOFILE=) or lower limits.maxConnections"
        case ENFILE: "out of file descriptors (ENFILE: the system's limit, fs.file-max)"
        default: "out of memory for sockets (\(errnoCode == ENOBUFS ? "ENOBUFS" : "ENOMEM"))"
        }
    }
}

/// Counts ``LocalResourceFailure``s (`concord_proxy_local_resource_failures_total`) and logs them at most once a
/// second, saying how many it kept quiet: when descriptors run out, every connection fails at once.
final class LocalResourceAlarm: Sendable {
    private let counter: CoreMetrics.Counter
    private let logger: Logger
    private let interval: Duration
    private let state = NIOLockedValueBox<(lastLine: ContinuousClock.Instant?, quiet: Int)>((nil, 0))

    init(counter: CoreMetrics.Counter, logger: Logger, interval: Duration = .seconds(1)) {
        self.counter = counter
        self.logger = logger
        self.interval = interval
    }

    /// `activity`: what failed, e.g. "connecting to 10.0.0.5:8080" — the line ends with what the proxy did about it.
    func report(_ failure: LocalResourceFailure, while activity: String, outcome: String) {
        counter.increment()
        let now = ContinuousClock.now
        let quiet: Int? = state.withLockedValue { state in
            if let last = state.lastLine, now - last < interval {
                state.quiet += 1
                return nil
            }
            defer { state = (now, 0) }
            return state.quiet
        }
        guard let quiet else { return }
        let more = quiet > 0 ? " (and \(quiet) more since the last line)" : ""
        logger.error("\(activity) failed: \(failure); \(outcome)\(more)")
    }
}
