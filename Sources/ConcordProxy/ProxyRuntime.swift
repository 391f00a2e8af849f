import Logging
import NIOConcurrencyHelpers

/// What every connection handler of one proxy shares: settings, the balancer, metrics, the logger.
final class ProxyRuntime: Sendable {
    let configuration: ProxyConfiguration
    let balancer: Balancer
    let extractor: RequestKeyExtractor
    let metrics: ProxyMetrics
    let logger: Logger
    private let connections = NIOLockedValueBox(0)

    init(configuration: ProxyConfiguration, balancer: Balancer, metrics: ProxyMetrics, logger: Logger) throws(ProxyError) {
        self.configuration = configuration
        self.balancer = balancer
        self.metrics = metrics
        self.logger = logger
        var trusted: [AddressPrefix] = []
        for text in configuration.trustedProxies { trusted.append(try AddressPrefix(parsing: text)) }
        self.extractor = RequestKeyExtractor(
            chain: configuration.key, trustedProxies: trusted,
            ipv4PrefixLength: configuration.ipv4PrefixLength, ipv6PrefixLength: configuration.ipv6PrefixLength
        )
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
