import Metrics

/// The `kind` dimension of `concord_redis_command_failures_total`: a fixed, small set, so the counters can be
/// created once per client.
enum RedisFailureKind: String, CaseIterable, Sendable {
    /// No reply within the command timeout, or no connect within the connect timeout.
    case timeout
    /// The connect was refused or failed, or the AUTH/SELECT handshake failed.
    case connectionFailed = "connection_failed"
    /// The connection closed while the command waited for its reply.
    case connectionClosed = "connection_closed"
    /// The command failed at once because its connection waits out its reconnect backoff.
    case backingOff = "backing_off"
    /// This process could not open a connection (out of file descriptors or socket memory): Redis was not reached.
    case localResources = "local_resources"
    /// Redis answered with an error reply (`-ERR`, `-WRONGTYPE`, …) that the client did not handle itself.
    case serverError = "server_error"
    /// Redis sent bytes that are not valid RESP or exceed the decoder's limits.
    case protocolError = "protocol_error"
    /// Anything else: an unexpected reply shape, too many cluster redirections, a client that was shut down.
    case other
}

/// A ``RedisClient``'s swift-metrics handles, created once from the injected `MetricsFactory`.
///
/// - `concord_redis_commands_total`: commands sent through ``RedisClient/send(_:)`` and
///   ``RedisClient/run(_:keys:arguments:)``, each counted once whatever redirections or script loads it took.
/// - `concord_redis_command_failures_total{kind}`: those commands that threw, by ``RedisFailureKind``.
/// - `concord_redis_reconnects_total`: connects on a pool slot whose previous connection died or whose last
///   connect failed (the first connect of each slot is not a reconnect).
/// - `concord_redis_pool_connections{node}`: open connections per Redis node (a meter: up on connect, down on close).
struct RedisClientMetrics: Sendable {
    let commands: Counter
    let reconnects: Counter
    /// `concord_redis_local_resource_failures_total`: connects that failed in this process (``LocalResourceAlarm``).
    let localResourceFailures: Counter
    private let failures: [RedisFailureKind: Counter]
    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        commands = Counter(label: "concord_redis_commands_total", factory: factory)
        reconnects = Counter(label: "concord_redis_reconnects_total", factory: factory)
        localResourceFailures = Counter(label: "concord_redis_local_resource_failures_total", factory: factory)
        failures = Dictionary(uniqueKeysWithValues: RedisFailureKind.allCases.map {
            ($0, Counter(label: "concord_redis_command_failures_total", dimensions: [("kind", $0.rawValue)], factory: factory))
        })
    }

    func failed(_ error: RedisClientError) {
        failures[error.metricKind]?.increment()
    }

    /// The open-connections meter of one node's pool.
    /// `node`: `host:port`, or `sentinel master NAME` for a primary found through sentinels.
    func connections(node: String) -> Meter {
        Meter(label: "concord_redis_pool_connections", dimensions: [("node", node)], factory: factory)
    }
}
