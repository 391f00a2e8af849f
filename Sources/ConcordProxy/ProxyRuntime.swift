import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

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
    /// The TLS context new client connections handshake with, built from ``ProxyConfiguration/tls``'s files when
    /// this generation was made (so a reload reads a renewed certificate); `nil` without TLS.
    let tlsContext: NIOSSLContext?
    /// The listener `tlsContext` belongs to, for the next reload to compare with.
    private let tlsListener: ProxyTLSConfiguration.Listener?
    /// TLS towards the backends (``ProxyConfiguration/backendTLS``), its CA file read when this generation was
    /// made; `nil` without it.
    let backendTLS: BackendTLS?
    /// ``ProxyConfiguration/responseHeaders``, split once.
    let responseFields: [(name: String, value: String)]
    /// Open client connections, shared by every generation: their count enforces `maxConnections`, and
    /// ``ProxyServer/stop(drainTimeout:)`` closes the ones still open when its drain timeout ends.
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>
    /// Set by ``announceStop(idleGrace:)`` (shared by every generation): a connection whose HTTP handlers are only
    /// installed after its TLS handshake (ALPN) may miss the announcement, and asks here instead.
    private let stopAnnounced: NIOLockedValueBox<TimeAmount?>

    convenience init(configuration: ProxyConfiguration, balancer: Balancer, metrics: ProxyMetrics, logger: Logger,
                     accessLogSink: AccessLogSink = AccessLogSink()) throws(ProxyError) {
        try self.init(configuration: configuration, balancer: balancer, metrics: metrics, logger: logger,
                      accessLogSink: accessLogSink, connections: NIOLockedValueBox([:]), stopAnnounced: NIOLockedValueBox(nil),
                      previousTLS: nil)
    }

    private init(configuration: ProxyConfiguration, balancer: Balancer, metrics: ProxyMetrics, logger: Logger,
                 accessLogSink: AccessLogSink, connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>,
                 stopAnnounced: NIOLockedValueBox<TimeAmount?>, previousTLS: ProxyTLSConfiguration.Listener?) throws(ProxyError) {
        self.configuration = configuration
        self.balancer = balancer
        self.metrics = metrics
        self.logger = logger
        self.accessLogSink = accessLogSink
        self.connections = connections
        self.stopAnnounced = stopAnnounced
        let listener: ProxyTLSConfiguration.Listener?
        if let tls = configuration.tls, let previousTLS, previousTLS.source == tls.source(mode: configuration.mode) {
            listener = previousTLS
        } else {
            listener = try configuration.tls?.makeContext(mode: configuration.mode)
        }
        self.tlsListener = listener
        self.tlsContext = listener?.context
        let now = Int(Date().timeIntervalSince1970)
        for certificate in listener?.expiries ?? [] {
            metrics.recordCertificateExpiry(certificate)
            if let problem = certificate.problem(now: now) { logger.log(level: problem.level, "\(problem.message)") }
        }
        self.backendTLS = try configuration.backendTLS?.makeBackendTLS()
        self.responseFields = try configuration.responseFields
        var trusted: [AddressPrefix] = []
        for text in configuration.trustedProxies { trusted.append(try AddressPrefix(parsing: text)) }
        self.extractor = RequestKeyExtractor(
            chain: configuration.key, trustedProxies: trusted,
            ipv4PrefixLength: configuration.ipv4PrefixLength, ipv6PrefixLength: configuration.ipv6PrefixLength
        )
    }

    /// Where access log lines go while ``ProxyConfiguration/accessLog`` is on; `nil` when off.
    var accessLog: AccessLogSink? { configuration.accessLog ? accessLogSink : nil }

    /// The same proxy with new settings, for connections accepted from now on. TLS files are read again even when
    /// their paths did not change: that is how a renewed certificate is picked up. When neither the TLS settings
    /// nor any file's bytes changed, the TLS context is kept (``ProxyTLSConfiguration/Source``): clients resume
    /// their sessions across the reload.
    func reconfigured(_ configuration: ProxyConfiguration) throws(ProxyError) -> ProxyRuntime {
        try ProxyRuntime(configuration: configuration, balancer: balancer, metrics: metrics, logger: logger,
                         accessLogSink: accessLogSink, connections: connections, stopAnnounced: stopAnnounced,
                         previousTLS: tlsListener)
    }

    /// Counts a new client connection and keeps it until it closes; `false` when `maxConnections` are already
    /// open (the caller closes it). `counted: false`: the connection was counted against `maxConnections` already
    /// (by the direct HTTP engine, which handed it over): it is only kept, for the stop.
    func admitConnection(_ channel: any Channel, counted: Bool = true) -> Bool {
        let id = ObjectIdentifier(channel)
        let admitted = connections.withLockedValue { open -> Bool in
            guard !counted || open.count < configuration.limits.maxConnections else { return false }
            open[id] = channel
            return true
        }
        guard admitted else { return false }
        metrics.activeConnections.increment()
        channel.closeFuture.whenComplete { [connections, metrics] _ in
            connections.withLockedValue { _ = $0.removeValue(forKey: id) }
            metrics.activeConnections.decrement()
        }
        return true
    }

    /// Closes every client connection still open and waits until they are closed; returns how many there were.
    func closeOpenConnections() async -> Int {
        let open = connections.withLockedValue { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for channel in open { group.addTask { try? await channel.close() } }
        }
        return open.count
    }

    var openConnections: Int { connections.withLockedValue { $0.count } }

    /// Tells every open client connection that the proxy stops (``ProxyStoppingEvent``); L4 connections ignore it.
    func announceStop(idleGrace: TimeAmount) {
        stopAnnounced.withLockedValue { $0 = idleGrace }
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ProxyStoppingEvent(idleGrace: idleGrace)) }
    }

    /// For handlers installed on a connection after the stop was announced (behind ALPN): tells them now. One
    /// that also gets the announcement itself sees it twice, which changes nothing.
    func tellIfStopping(_ channel: any Channel) {
        if let idleGrace = stopAnnounced.withLockedValue({ $0 }) {
            channel.pipeline.syncOperations.fireUserInboundEventTriggered(ProxyStoppingEvent(idleGrace: idleGrace))
        }
    }
}

/// Sent to each HTTP client connection when the proxy stops: from then on each response says `Connection: close`
/// and closes its connection, and an idle connection closes after `idleGrace`.
struct ProxyStoppingEvent: Sendable {
    var idleGrace: TimeAmount
}
