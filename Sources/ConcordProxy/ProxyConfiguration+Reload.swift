/// What a reload (SIGHUP) does with a newly read configuration: it applies every setting that changed and can
/// change while the proxy runs, and keeps the current value of each setting that is bound to a listening socket.
public struct ProxyReload: Sendable, Hashable {
    /// One top-level setting of ``ProxyConfiguration`` (named as in YAML).
    public enum Setting: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case listen, backends, mode, balance, key, algorithm, boundedLoad, health, admin, adminAllowRemote
        case stickyCookie, trustedProxies, ipv4PrefixLength, ipv6PrefixLength, proxyProtocol, limits, drain, cpuAffinity
        case eventLoops, tcpEngine, httpEngine, accessLog, tls, reusePort, httpRedirect, backendTLS, acceptProxyProtocol, responseHeaders

        /// Settings that decide which sockets are bound and how accepted connections are set up (and the loops
        /// and their CPUs, set once at start): changing them would mean closing listeners, so a reload keeps the current
        /// value and says a restart is needed.
        public var needsRestart: Bool {
            switch self {
            case .listen, .mode, .admin, .adminAllowRemote, .cpuAffinity, .eventLoops, .tcpEngine, .httpEngine, .reusePort, .httpRedirect: true
            default: false
            }
        }

        public var description: String { rawValue }
    }

    /// The configuration to run with from now on: the new one, with the restart-only settings as they were.
    public let configuration: ProxyConfiguration
    /// Settings that changed and take effect now (new client connections get new limits and key settings;
    /// open ones finish with theirs).
    public let applied: [Setting]
    /// Settings that changed but keep their current value until a restart.
    public let needsRestart: [Setting]

    /// Compares `new` with `current` setting by setting.
    public init(current: ProxyConfiguration, new: ProxyConfiguration) {
        let changed = Setting.allCases.filter { !current.hasSameValue(for: $0, as: new) }
        var kept = new
        kept.listen = current.listen
        kept.mode = current.mode
        kept.admin = current.admin
        kept.adminAllowRemote = current.adminAllowRemote
        kept.cpuAffinity = current.cpuAffinity
        kept.eventLoops = current.eventLoops
        kept.tcpEngine = current.tcpEngine
        kept.httpEngine = current.httpEngine
        kept.httpRedirect = current.httpRedirect
        kept.reusePort = current.reusePort
        self.configuration = kept
        self.applied = changed.filter { !$0.needsRestart }
        self.needsRestart = changed.filter(\.needsRestart)
    }
}

extension ProxyConfiguration {
    /// Whether `setting` has the same value here and in `other`.
    func hasSameValue(for setting: ProxyReload.Setting, as other: ProxyConfiguration) -> Bool {
        switch setting {
        case .listen: listen == other.listen
        case .backends: backends == other.backends
        case .mode: mode == other.mode
        case .balance: balance == other.balance
        case .key: key == other.key
        case .algorithm: algorithm == other.algorithm
        case .boundedLoad: boundedLoad == other.boundedLoad
        case .health: health == other.health
        case .admin: admin == other.admin
        case .adminAllowRemote: adminAllowRemote == other.adminAllowRemote
        case .stickyCookie: stickyCookie == other.stickyCookie
        case .trustedProxies: trustedProxies == other.trustedProxies
        case .ipv4PrefixLength: ipv4PrefixLength == other.ipv4PrefixLength
        case .ipv6PrefixLength: ipv6PrefixLength == other.ipv6PrefixLength
        case .proxyProtocol: proxyProtocol == other.proxyProtocol
        case .limits: limits == other.limits
        case .drain: drain == other.drain
        case .cpuAffinity: cpuAffinity == other.cpuAffinity
        case .eventLoops: eventLoops == other.eventLoops
        case .tcpEngine: tcpEngine == other.tcpEngine
        case .httpEngine: httpEngine == other.httpEngine
        case .accessLog: accessLog == other.accessLog
        case .tls: tls == other.tls
        case .httpRedirect: httpRedirect == other.httpRedirect
        case .reusePort: reusePort == other.reusePort
        case .backendTLS: backendTLS == other.backendTLS
        case .acceptProxyProtocol: acceptProxyProtocol == other.acceptProxyProtocol
        case .responseHeaders: responseHeaders == other.responseHeaders
        }
    }

    /// A setting's value as a log line shows it (for the restart-only ones).
    func describe(_ setting: ProxyReload.Setting) -> String {
        switch setting {
        case .listen: listen.description
        case .mode: mode.rawValue
        case .admin: admin?.description ?? "off"
        case .adminAllowRemote: String(adminAllowRemote)
        case .cpuAffinity: cpuAffinity.rawValue
        case .eventLoops: eventLoops.map(String.init) ?? "one per CPU"
        case .tcpEngine: tcpEngine.rawValue
        case .httpEngine: httpEngine.rawValue
        case .httpRedirect: httpRedirect?.listen.description ?? "off"
        case .reusePort: String(reusePort)
        default: setting.rawValue
        }
    }
}
