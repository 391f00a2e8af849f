import CoreMetrics
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Counts ``LocalResourceFailure``s (the counter it is given, e.g. `concord_proxy_local_resource_failures_total`) and logs them at most once a
/// second, saying how many it kept quiet: when descriptors run out, every connection fails at once.
public final class LocalResourceAlarm: Sendable {
    private let counter: CoreMetrics.Counter
    private let logger: Logger
    private let remedy: String?
    private let interval: Duration
    private let state = NIOLockedValueBox<(lastLine: ContinuousClock.Instant?, quiet: Int)>((nil, 0))

    /// `remedy`: what else the operator can do when the process's descriptors run out (EMFILE), e.g. the proxy's
    /// "or lower limits.maxConnections".
    public init(counter: CoreMetrics.Counter, logger: Logger, remedy: String? = nil, interval: Duration = .seconds(1)) {
        self.counter = counter
        self.logger = logger
        self.remedy = remedy
        self.interval = interval
    }

    /// `activity`: what failed, e.g. "connecting to 10.0.0.5:8080" — the line ends with what the proxy did about it.
    public func report(_ failure: LocalResourceFailure, while activity: String, outcome: String) {
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
        let remedy = failure.errnoCode == EMFILE ? remedy.map { " \($0)" } ?? "" : ""
        logger.error("\(activity) failed: \(failure)\(remedy); \(outcome)\(more)")
    }
}
