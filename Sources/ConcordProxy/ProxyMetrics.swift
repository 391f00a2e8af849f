import ConcordNetworking
import CoreMetrics
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// The proxy's counters, through swift-metrics into a Prometheus registry of its own (so several proxies in one
/// process, as in tests, never share or clash), exported as text at the admin listener's `/metrics`.
public final class ProxyMetrics: Sendable {
    /// The counters of one backend, created when it joins and handed out with each pick (no lookup per request).
    public struct BackendCounters: Sendable {
        let requests: CoreMetrics.Counter
        let bytesToBackend: CoreMetrics.Counter
        let bytesFromBackend: CoreMetrics.Counter
        let connectFailures: CoreMetrics.Counter
    }

    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    let activeConnections: CoreMetrics.Meter
    /// Bytes of connection buffers the direct TCP engine holds (two 16-KiB buffers per open pair and per spare slot).
    let tcpBufferBytes: CoreMetrics.Meter
    let keysRemapped: CoreMetrics.Counter
    let retries: CoreMetrics.Counter
    /// Client connections switched to another protocol (101, e.g. WebSocket) and tunnelled to their backend.
    let upgrades: CoreMetrics.Counter
    /// Under `limits.maxRequestsPerBackend`: requests or connections that waited for a slot, waits that ran out
    /// (503), requests turned away because their backend's queue was full (503), and waiters sent to another
    /// backend because theirs went down or left.
    let queued: CoreMetrics.Counter
    let queueTimeouts: CoreMetrics.Counter
    let queueFull: CoreMetrics.Counter
    /// Waiters dropped because their client sent EOF (`limits.abortQueuedOnClose`).
    let queueAborts: CoreMetrics.Counter
    let redispatched: CoreMetrics.Counter
    /// With `tls`: client handshakes completed, and those that failed (a plain-HTTP client on the TLS port, a
    /// client that trusts no certificate we have, no common protocol version or cipher).
    let tlsHandshakes: CoreMetrics.Counter
    let tlsHandshakeFailures: CoreMetrics.Counter
    /// Client connections closed because they did not begin with a valid PROXY protocol header.
    let proxyProtocolRejected: CoreMetrics.Counter
    /// Plain-HTTP requests sent to HTTPS by `httpRedirect`.
    let httpsRedirects: CoreMetrics.Counter
    /// With `tls.http2`: client connections that chose HTTP/2 by ALPN, and the streams (requests) they opened.
    let http2Connections: CoreMetrics.Counter
    let http2Streams: CoreMetrics.Counter
    /// Connects, probes and accepts that failed on this machine (out of descriptors, ports, memory): ``LocalResourceFailure``.
    let localResourceFailures: CoreMetrics.Counter
    private let byBackend = NIOLockedValueBox<[String: BackendCounters]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
        self.activeConnections = CoreMetrics.Meter(label: "concord_proxy_active_connections", factory: factory)
        self.tcpBufferBytes = CoreMetrics.Meter(label: "concord_proxy_tcp_buffer_bytes", factory: factory)
        self.keysRemapped = CoreMetrics.Counter(label: "concord_proxy_keys_remapped_total", factory: factory)
        self.retries = CoreMetrics.Counter(label: "concord_proxy_retries_total", factory: factory)
        self.upgrades = CoreMetrics.Counter(label: "concord_proxy_upgrades_total", factory: factory)
        self.queued = CoreMetrics.Counter(label: "concord_proxy_queued_total", factory: factory)
        self.queueTimeouts = CoreMetrics.Counter(label: "concord_proxy_queue_timeouts_total", factory: factory)
        self.queueFull = CoreMetrics.Counter(label: "concord_proxy_queue_full_total", factory: factory)
        self.queueAborts = CoreMetrics.Counter(label: "concord_proxy_queue_aborts_total", factory: factory)
        self.redispatched = CoreMetrics.Counter(label: "concord_proxy_redispatched_total", factory: factory)
        self.tlsHandshakes = CoreMetrics.Counter(label: "concord_proxy_tls_handshakes_total", factory: factory)
        self.tlsHandshakeFailures = CoreMetrics.Counter(label: "concord_proxy_tls_handshake_failures_total", factory: factory)
        self.proxyProtocolRejected = CoreMetrics.Counter(label: "concord_proxy_proxy_protocol_rejected_total", factory: factory)
        self.httpsRedirects = CoreMetrics.Counter(label: "concord_proxy_https_redirects_total", factory: factory)
        self.http2Connections = CoreMetrics.Counter(label: "concord_proxy_http2_connections_total", factory: factory)
        self.http2Streams = CoreMetrics.Counter(label: "concord_proxy_http2_streams_total", factory: factory)
        self.localResourceFailures = CoreMetrics.Counter(label: "concord_proxy_local_resource_failures_total", factory: factory)
    }

    /// `concord_proxy_tls_certificate_not_after_seconds{certificate="FILE"}`: when a served certificate expires
    /// (for an alert such as `… - time() < 14 * 86400`); set at start and on every reload.
    func recordCertificateExpiry(_ expiry: CertificateExpiry) {
        CoreMetrics.Gauge(label: "concord_proxy_tls_certificate_not_after_seconds", dimensions: [("certificate", expiry.file)], factory: factory)
            .record(Double(expiry.notValidAfter))
    }

    func backend(_ id: String) -> BackendCounters {
        byBackend.withLockedValue { table in
            if let counters = table[id] { return counters }
            let dimensions = [("backend", id)]
            let counters = BackendCounters(
                requests: CoreMetrics.Counter(label: "concord_proxy_backend_requests_total", dimensions: dimensions, factory: factory),
                bytesToBackend: CoreMetrics.Counter(label: "concord_proxy_backend_bytes_sent_total", dimensions: dimensions, factory: factory),
                bytesFromBackend: CoreMetrics.Counter(label: "concord_proxy_backend_bytes_received_total", dimensions: dimensions, factory: factory),
                connectFailures: CoreMetrics.Counter(label: "concord_proxy_backend_connect_failures_total", dimensions: dimensions, factory: factory)
            )
            table[id] = counters
            return counters
        }
    }

    func healthTransition(backend id: String, to state: String) {
        CoreMetrics.Counter(label: "concord_proxy_health_transitions_total", dimensions: [("backend", id), ("to", state)], factory: factory)
            .increment()
    }

    /// A response the proxy made itself (400, 408, 413, 431, 502, 503, 504).
    func proxyResponse(status: Int) {
        CoreMetrics.Counter(label: "concord_proxy_responses_total", dimensions: [("status", String(status))], factory: factory).increment()
    }

    /// Prometheus text exposition format.
    public func exposition() -> String { registry.emitToString() }
}
