import Logging
import NIOConcurrencyHelpers

/// What the connection handlers of one proxy share: settings, the balancer, metrics, the logger. Immutable: a
/// reload makes a new one (``reconfigured(_:)``) that new client connections get, while open connections finish
/// with the one they started with; every generation shares the balancer, the metrics and the connection count.
final class ProxyRuntime: Sendable {
    let configuration: ProxyConfiguration
    let balancer: Balancer
    let extractor: RequestKeyExtractor
    let metrics: ProxyMetrics
    let logger: Logger
    /// The access log's writer. Every generation shares one sink, so a reload that turns the log on or off keeps
    /// its buffer.
    let accessLogSink: AccessLogSink
    private let connections: NIOLockedValueBox<Int>

    convenience init(configuration: ProxyConfiguration, balancer: Balancer, metrics: ProxyMetrics, logger: Logger,
                     accessLogSink: AccessLogSink = AccessLogSink()) throws(ProxyError) {
        try self.init(configuration: configuration, balancer: balancer, metrics: metrics, logger: logger,
                      accessLogSink: accessLogSink, connections: NIOLockedValueBox(0))
    }

    private init(configuration: ProxyConfiguration, balancer: Balancer, metrics: ProxyMetrics, logger: Logger,
                 accessLogSink: AccessLogSink, connections: NIOLockedValueBox<Int>) throws(ProxyError) {
        self.configuration = configuration
        self.balancer = balancer
        self.metrics = metrics
        self.logger = logger
        self.accessLogSink = accessLogSink
        self.connections = connections
        var trusted: [AddressPrefix] = []
        for text in configuration.trustedProxies { trusted.append(try AddressPrefix(parsing: text)) }
        self.extractor = RequestKeyExtractor(
            chain: configuration.key, trustedProxies: trusted,
            ipv4PrefixLength: configuration.ipv4PrefixLength, ipv6PrefixLength: configuration.ipv6PrefixLength
        )
    }

    /// Where access log lines go while ``ProxyConfiguration/accessLog`` is on; `nil` when off.
    var accessLog: AccessLogSink? { configuration.accessLog ? accessLogSink : nil }

    /// The same proxy with new settings, for connections accepted from now on.
    func reconfigured(_ configuration: ProxyConfiguration) throws(ProxyError) -> ProxyRuntime {
        try ProxyRuntime(configuration: configuration, balancer: balancer, metrics: metrics, logger: logger,
                         accessLogSink: accessLogSink, connections: connections)
    }

    /// Counts a new client connection; `false` when `maxConnections` are already open (the caller closes it).
    func admitConnection() -> Bool {
        let admitted = connections.withLockedValue { count -> Bool in
            guard count < configuration.limits.maxConnections else { return false }
            count += 1
            return true
        }
        if admitted { metrics.activeConnections.increment() }
        return admitted
    }

    func connectionClosed() {
        connections.withLockedValue { $0 -= 1 }
        metrics.activeConnections.decrement()
    }

    var openConnections: Int { connections.withLockedValue { $0 } }
}
