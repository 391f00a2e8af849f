import Logging
import Synchronization

/// The pool's last failed connection attempt. postgres-nio reports those only in its log (at info, as "Connection
/// creation failed" with the error in metadata); a statement that times out waiting for a connection says just
/// that it timed out. Kept here, a timeout can say why there was no connection ("connection refused", a TLS or
/// password error) instead of "no answer within 2 s" for a server that refused at once.
final class PostgresConnectFailureLog: Sendable {
    private let last = Mutex<String?>(nil)

    var lastFailure: String? { last.withLock { $0 } }

    func record(_ failure: String) { last.withLock { $0 = failure } }

    /// A statement succeeded: whatever failed before is history.
    func clear() { last.withLock { $0 = nil } }

    /// A logger for the pool: connect failures are recorded here; what reaches `upstream` is what it would have
    /// logged at `upstreamLevel` (the store logs an outage once, not every reconnect).
    func poolLogger(upstream: Logger, upstreamLevel: Logger.Level) -> Logger {
        Logger(label: upstream.label) { _ in
            Handler(failures: self, upstream: upstream.handler, upstreamLevel: upstreamLevel, metadata: upstream.handler.metadata)
        }
    }

    private struct Handler: LogHandler {
        let failures: PostgresConnectFailureLog
        let upstream: any LogHandler
        let upstreamLevel: Logger.Level
        var metadata: Logger.Metadata
        var metadataProvider: Logger.MetadataProvider?
        /// Info: the level of the connect failures. Nothing the pool logs per query is at info or above.
        var logLevel = Logger.Level.info

        func log(event: LogEvent) {
            if event.message.description == "Connection creation failed", let error = event.metadata?["psql_error"] {
                failures.record("\(error)")
            }
            if event.level >= upstreamLevel { upstream.log(event: event) }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
    }
}
