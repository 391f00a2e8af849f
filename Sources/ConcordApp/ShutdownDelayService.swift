import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Delays a node's graceful shutdown: on SIGTERM or SIGINT, `/ready` answers 503 for `delay` while the node keeps
/// serving, so a proxy's health check (or an orchestrator) stops sending it new requests before its connections
/// close; then this service returns, which shuts the service group down gracefully. A second signal during the
/// delay shuts down at once. Without a delay, a request that reaches a node as it closes an idle keep-alive
/// connection is cut off, and a proxy cannot resend a POST it already sent (docs/lab.md).
///
/// Run it in the group that owns the app, with `successTerminationBehavior: .gracefullyShutdownGroup` and no
/// graceful-shutdown signals of the group's own (this service traps them).
public final class ShutdownDelayService: Service {
    public let delay: Duration
    private let logger: Logger
    private let draining = Atomic<Bool>(false)
    private let signals: UnixSignalsSequence

    /// Traps SIGTERM and SIGINT from here on (a signal that arrives before ``run()`` starts waits for it): make it
    /// before the app starts listening, or a signal in between would end the process at once (seen under load:
    /// the node said it was listening, and a SIGTERM right after killed it, status 143).
    public init(delay: Duration, logger: Logger) async {
        self.delay = delay
        self.logger = logger
        self.signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
    }

    /// Whether a shutdown signal arrived: `/ready` answers 503 from then on.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public func run() async throws {
        let signals = signals
        let (events, continuation) = AsyncStream<UnixSignal>.makeStream()
        // Not a child task: a signal sequence need not end promptly on cancellation, and shutdown must not wait.
        let listener = Task {
            for await signal in signals { continuation.yield(signal) }
            continuation.finish()
        }
        defer {
            listener.cancel()
            continuation.finish()
        }
        // The group may also shut down for another reason; then this service just ends.
        await cancelWhenGracefulShutdown { [self] in
            var timer: Task<Void, Never>?
            defer { timer?.cancel() }
            for await signal in events {
                guard timer == nil else {
                    logger.notice("\(signal) again: shutting down now")
                    return
                }
                draining.store(true, ordering: .relaxed)
                logger.notice("\(signal): /ready answers 503 for \(delay), then shutting down (a second signal stops at once)")
                // The delay ends the stream, and with it this loop.
                let delay = delay
                timer = Task {
                    try? await Task.sleep(for: delay)
                    continuation.finish()
                }
            }
        }
    }
}
