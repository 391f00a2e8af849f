import NIOCore

/// Every limit and timeout the proxy enforces on clients and backends, in one value. Durations are seconds.
/// A request over a limit gets its status (431, 408, 413, 400) and its connection is closed; no other client is
/// affected.
public struct ProxyLimits: Sendable, Hashable, Codable {
    /// Largest request head: request line and header fields, blank line included (→ 431). Default 32 KiB.
    public var maxHeaderBytes: Int
    /// Most header fields in one request (→ 431) or one backend response (→ 502). Default 100.
    public var maxHeaderCount: Int
    /// Largest backend response head, status line and all header lines (→ 502, as nginx and HAProxy answer a
    /// response head over their buffer). Default 64 KiB.
    public var maxResponseHeadBytes: Int
    /// Seconds from a request's first byte to the end of its headers (slowloris; → 408). Default 10.
    public var headerReadTimeout: Double
    /// Seconds a request body may go without a byte from the client (a slow POST, "R-U-Dead-Yet"; → 408, or 504
    /// when it was the backend that stopped taking the body). Default 60, as nginx's `client_body_timeout`.
    public var bodyReadTimeout: Double
    /// Seconds a keep-alive client connection may sit idle between requests before it is closed. Default 60.
    public var keepAliveTimeout: Double
    /// Client connections held at once; more are closed on accept. Default 10,000.
    public var maxConnections: Int
    /// Largest request body in bytes (→ 413). Default 16 MiB.
    public var maxBodyBytes: Int
    /// Seconds to connect to a backend before trying the next one / answering 504. Default 2.
    public var connectTimeout: Double
    /// Seconds from a request's end to the backend's response head (→ 504). Then the longest a response may go
    /// without progress — no byte from the backend and none taken by the client — before the exchange is cut off
    /// (``ResponseProgress``; nginx's `proxy_read_timeout` and `send_timeout`). Default 60.
    public var responseTimeout: Double
    /// L4: seconds a proxied TCP connection may carry no bytes either way before both sides are closed. Default 300.
    public var tcpIdleTimeout: Double
    /// L4: when the backend has finished and closed while the client may still be sending (an early answer to an
    /// upload), the client's further bytes are read and dropped, so the answer is not cut off by a reset
    /// (``LingeringClose``); the client connection closes once it has sent nothing for this many seconds (and at
    /// the latest 30 s after the lingering began). Default 5, as nginx's `lingering_timeout`.
    public var lingeringTimeout: Double
    /// Idle keep-alive connections kept per backend per event loop. Default 64.
    public var maxIdleConnectionsPerBackend: Int
    /// Requests (L7) or connections (L4) one backend gets at once; more wait in the proxy, first come first
    /// served, for up to ``queueTimeout`` (HAProxy's `maxconn` and queue). `nil` (the default): no limit, no queue.
    public var maxRequestsPerBackend: Int?
    /// Seconds a request or connection may wait for a backend under ``maxRequestsPerBackend`` (→ 503, or the client
    /// connection closed in L4). Default 5.
    public var queueTimeout: Double
    /// Requests or connections that may wait for one backend under ``maxRequestsPerBackend``; one more gets a 503
    /// at once (L4: closed), as HAProxy's `maxqueue`. `nil` (the default): the queue is bounded only by
    /// ``queueTimeout`` and ``maxConnections``.
    public var maxQueuePerBackend: Int?
    /// A client that sends EOF while its request or connection waits in a backend's queue is dropped from the queue
    /// and closed (HAProxy's `option abortonclose`): under overload such a client has usually given up (a browser's
    /// stop button), and its request has reached no backend. Off by default: a half-closed client is answered.
    public var abortQueuedOnClose: Bool

    public init(
        maxHeaderBytes: Int = 32 * 1024,
        maxHeaderCount: Int = 100,
        headerReadTimeout: Double = 10,
        bodyReadTimeout: Double = 60,
        keepAliveTimeout: Double = 60,
        maxConnections: Int = 10_000,
        maxBodyBytes: Int = 16 * 1024 * 1024,
        connectTimeout: Double = 2,
        responseTimeout: Double = 60,
        tcpIdleTimeout: Double = 300,
        lingeringTimeout: Double = 5,
        maxIdleConnectionsPerBackend: Int = 64,
        maxResponseHeadBytes: Int = 64 * 1024,
        maxRequestsPerBackend: Int? = nil,
        queueTimeout: Double = 5,
        maxQueuePerBackend: Int? = nil,
        abortQueuedOnClose: Bool = false
    ) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.headerReadTimeout = headerReadTimeout
        self.bodyReadTimeout = bodyReadTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.maxConnections = maxConnections
        self.maxBodyBytes = maxBodyBytes
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.tcpIdleTimeout = tcpIdleTimeout
        self.lingeringTimeout = lingeringTimeout
        self.maxIdleConnectionsPerBackend = maxIdleConnectionsPerBackend
        self.maxResponseHeadBytes = maxResponseHeadBytes
        self.maxRequestsPerBackend = maxRequestsPerBackend
        self.queueTimeout = queueTimeout
        self.maxQueuePerBackend = maxQueuePerBackend
        self.abortQueuedOnClose = abortQueuedOnClose
    }

    /// The YAML keys of this section (for the hint when one is written a level too high).
    static var settingNames: [String] { CodingKeys.allCases.map(\.stringValue) }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case maxHeaderBytes, maxHeaderCount, maxResponseHeadBytes, headerReadTimeout, bodyReadTimeout, keepAliveTimeout, maxConnections
        case maxBodyBytes, connectTimeout, responseTimeout, tcpIdleTimeout, lingeringTimeout, maxIdleConnectionsPerBackend
        case maxRequestsPerBackend, queueTimeout, maxQueuePerBackend, abortQueuedOnClose
    }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ProxyLimits()
        self.init(
            maxHeaderBytes: try c.decodeIfPresent(Int.self, forKey: .maxHeaderBytes) ?? d.maxHeaderBytes,
            maxHeaderCount: try c.decodeIfPresent(Int.self, forKey: .maxHeaderCount) ?? d.maxHeaderCount,
            headerReadTimeout: try c.decodeIfPresent(Double.self, forKey: .headerReadTimeout) ?? d.headerReadTimeout,
            bodyReadTimeout: try c.decodeIfPresent(Double.self, forKey: .bodyReadTimeout) ?? d.bodyReadTimeout,
            keepAliveTimeout: try c.decodeIfPresent(Double.self, forKey: .keepAliveTimeout) ?? d.keepAliveTimeout,
            maxConnections: try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections,
            maxBodyBytes: try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? d.maxBodyBytes,
            connectTimeout: try c.decodeIfPresent(Double.self, forKey: .connectTimeout) ?? d.connectTimeout,
            responseTimeout: try c.decodeIfPresent(Double.self, forKey: .responseTimeout) ?? d.responseTimeout,
            tcpIdleTimeout: try c.decodeIfPresent(Double.self, forKey: .tcpIdleTimeout) ?? d.tcpIdleTimeout,
            lingeringTimeout: try c.decodeIfPresent(Double.self, forKey: .lingeringTimeout) ?? d.lingeringTimeout,
            maxIdleConnectionsPerBackend: try c.decodeIfPresent(Int.self, forKey: .maxIdleConnectionsPerBackend)
                ?? d.maxIdleConnectionsPerBackend,
            maxResponseHeadBytes: try c.decodeIfPresent(Int.self, forKey: .maxResponseHeadBytes) ?? d.maxResponseHeadBytes,
            maxRequestsPerBackend: try c.decodeIfPresent(Int.self, forKey: .maxRequestsPerBackend),
            queueTimeout: try c.decodeIfPresent(Double.self, forKey: .queueTimeout) ?? d.queueTimeout,
            maxQueuePerBackend: try c.decodeIfPresent(Int.self, forKey: .maxQueuePerBackend),
            abortQueuedOnClose: try c.decodeIfPresent(Bool.self, forKey: .abortQueuedOnClose) ?? d.abortQueuedOnClose
        )
    }

    func validate() throws(ProxyError) {
        for (name, value) in [("maxHeaderBytes", maxHeaderBytes), ("maxHeaderCount", maxHeaderCount),
                              ("maxResponseHeadBytes", maxResponseHeadBytes),
                              ("maxConnections", maxConnections), ("maxBodyBytes", maxBodyBytes)] where value < 1 {
            throw .invalidSetting("limits.\(name) must be at least 1, got \(value)")
        }
        for (name, value) in [("headerReadTimeout", headerReadTimeout), ("bodyReadTimeout", bodyReadTimeout), ("keepAliveTimeout", keepAliveTimeout),
                              ("connectTimeout", connectTimeout), ("responseTimeout", responseTimeout),
                              ("tcpIdleTimeout", tcpIdleTimeout), ("lingeringTimeout", lingeringTimeout), ("queueTimeout", queueTimeout)] where !(value > 0 && value < 86_400) {
            throw .invalidSetting("limits.\(name) must be more than 0 and less than 86400 seconds, got \(value)")
        }
        if let maxRequestsPerBackend, maxRequestsPerBackend < 1 {
            throw .invalidSetting("limits.maxRequestsPerBackend must be at least 1 (leave it out for no limit), got \(maxRequestsPerBackend)")
        }
        if let maxQueuePerBackend, maxQueuePerBackend < 0 {
            throw .invalidSetting("limits.maxQueuePerBackend must be at least 0 (leave it out for no bound), got \(maxQueuePerBackend)")
        }
        if maxQueuePerBackend != nil && maxRequestsPerBackend == nil {
            throw .invalidSetting("limits.maxQueuePerBackend bounds the queue of limits.maxRequestsPerBackend: set that too, or leave it out")
        }
        guard maxIdleConnectionsPerBackend >= 0 else { throw .invalidSetting("limits.maxIdleConnectionsPerBackend must be ≥ 0") }
    }
}

extension TimeAmount {
    /// Seconds from configuration (fractions allowed), as a NIO time amount.
    init(seconds: Double) { self = .nanoseconds(Int64(seconds * 1e9)) }
}
