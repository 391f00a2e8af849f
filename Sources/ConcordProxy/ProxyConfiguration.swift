import ConcordHashing
import Foundation
import Yams

/// Everything `concord proxy` runs with: one `Codable` value, loaded from YAML (`--config`) and overridden by
/// command-line flags. Keys in YAML are the property names (`listen`, `backends`, `mode`, `balance`, `key`,
/// `algorithm`, `boundedLoad`, `healthPath`, `health`, `admin`, `limits`, `cpuAffinity`, `tls`, …); absent keys keep the
/// defaults below.
public struct ProxyConfiguration: Sendable, Hashable, Codable {
    /// Where clients connect. Default `127.0.0.1:8080`.
    public var listen: HostPort
    /// The backends, in order (order matters to modulo and jump hashing). Default none.
    public var backends: [HostPort]
    /// `http` (L7) or `tcp` (L4). Default `http`.
    public var mode: ProxyMode
    /// How a backend is picked. Default `hash`.
    public var balance: BalanceStrategy
    /// L7 hash key chain, first present wins. Default `ip` (L4 always hashes the client IP).
    public var key: KeyChain
    /// Key→backend algorithm for `hash`. Default `ring`.
    public var algorithm: HashAlgorithm
    /// Bounded-load factor c > 1 (no backend takes more than c × its share of in-flight load). Default off.
    public var boundedLoad: Double?
    /// Active and passive health checking (`healthPath` in YAML and `--health-path` set `health.path`).
    public var health: HealthCheckConfiguration
    /// Admin API and `/metrics` listener. Default off; must be loopback unless `adminAllowRemote`.
    public var admin: HostPort?
    /// Allow a non-loopback admin listener (it has no authentication). Default false.
    public var adminAllowRemote: Bool
    /// Cookie the proxy inserts in `sticky-cookie` mode. Default `CONCORDSRV`.
    public var stickyCookie: String
    /// Peers (CIDRs such as `10.0.0.0/8`, or single addresses) whose X-Forwarded-For is believed. Default none.
    public var trustedProxies: [String]
    /// IPv4 client addresses are grouped by this prefix before hashing (24 = nginx `ip_hash`). Default 32.
    public var ipv4PrefixLength: Int
    /// IPv6 client addresses are grouped by this prefix before hashing. Default 128.
    public var ipv6PrefixLength: Int
    /// L4: PROXY protocol header sent to backends. Default none.
    public var proxyProtocol: ProxyProtocolVersion?
    /// Every client connection begins with a PROXY protocol header (v1 or v2) from a load balancer in front, whose
    /// source address is then the client's — for `ip` keys, X-Forwarded-For and the access log (nginx `listen …
    /// proxy_protocol`, HAProxy `accept-proxy`). A connection without a valid one is closed. Default off.
    public var acceptProxyProtocol: Bool
    /// Limits and timeouts.
    public var limits: ProxyLimits
    /// Backends (`HOST:PORT` as in `backends`) that are draining (see docs/proxy.md, "Drain"); `nil` leaves drain
    /// to the admin API. A reload that changes this list makes exactly these backends drain. Default `nil`.
    public var drain: [HostPort]?
    /// Whether `concord proxy` pins its event loops to CPUs (``CPUAffinity``). Default `auto`.
    public var cpuAffinity: CPUAffinity
    /// How many event loops (threads) `concord proxy` serves on, like nginx's `worker_processes` or HAProxy's
    /// `nbthread`; `nil`: one per CPU the process may use. Set once at start. Default `nil`.
    public var eventLoops: Int?
    /// `tcp` mode: what forwards the bytes (``TCPEngine``). Set once at start. Default `direct`.
    public var tcpEngine: TCPEngine
    /// `http` mode: what serves the exchanges (``HTTPEngine``). Set once at start. Default `direct`.
    public var httpEngine: HTTPEngine
    /// One access log line per L7 exchange and per L4 connection (client, backend, status, bytes, duration) on
    /// standard error, whatever the log level (see docs/proxy.md, "Access log"). Default off.
    public var accessLog: Bool
    /// TLS on the client listener (see ``ProxyTLSConfiguration``). Default off (plain HTTP / TCP).
    public var tls: ProxyTLSConfiguration?
    /// TLS towards the backends (see ``BackendTLSConfiguration``). Default off (plain HTTP / TCP).
    public var backendTLS: BackendTLSConfiguration?
    /// One client listening socket per event loop (`SO_REUSEPORT`), each accepting onto its own loop, as HAProxy
    /// does by default; `false`: one socket, whose connections NIO hands to the loops in turn. With it on, another
    /// process of the same user can bind the same port too — a new proxy can take over before the old one stops,
    /// and two started by mistake share the traffic (see docs/proxy.md). Default `true`.
    public var reusePort: Bool
    /// With `tls` in `http` mode: a plain-HTTP listener that redirects every request to HTTPS (308). Default off.
    public var httpRedirect: HTTPRedirectConfiguration?
    /// `http` mode: fields added to every response a backend sends and to the proxy's own answers (`Name: value`,
    /// e.g. `Strict-Transport-Security: max-age=31536000`), like nginx's `add_header … always`. Default none.
    public var responseHeaders: [String]

    public init(
        listen: HostPort = HostPort(host: "127.0.0.1", port: 8080),
        backends: [HostPort] = [],
        mode: ProxyMode = .http,
        balance: BalanceStrategy = .hash,
        key: KeyChain = KeyChain([.ip]),
        algorithm: HashAlgorithm = .ring,
        boundedLoad: Double? = nil,
        health: HealthCheckConfiguration = HealthCheckConfiguration(),
        admin: HostPort? = nil,
        adminAllowRemote: Bool = false,
        stickyCookie: String = "CONCORDSRV",
        trustedProxies: [String] = [],
        ipv4PrefixLength: Int = 32,
        ipv6PrefixLength: Int = 128,
        proxyProtocol: ProxyProtocolVersion? = nil,
        acceptProxyProtocol: Bool = false,
        limits: ProxyLimits = ProxyLimits(),
        drain: [HostPort]? = nil,
        cpuAffinity: CPUAffinity = .auto,
        eventLoops: Int? = nil,
        tcpEngine: TCPEngine = .direct,
        httpEngine: HTTPEngine = .direct,
        accessLog: Bool = false,
        tls: ProxyTLSConfiguration? = nil,
        reusePort: Bool = true,
        backendTLS: BackendTLSConfiguration? = nil,
        httpRedirect: HTTPRedirectConfiguration? = nil,
        responseHeaders: [String] = []
    ) {
        self.listen = listen
        self.backends = backends
        self.mode = mode
        self.balance = balance
        self.key = key
        self.algorithm = algorithm
        self.boundedLoad = boundedLoad
        self.health = health
        self.admin = admin
        self.adminAllowRemote = adminAllowRemote
        self.stickyCookie = stickyCookie
        self.trustedProxies = trustedProxies
        self.ipv4PrefixLength = ipv4PrefixLength
        self.ipv6PrefixLength = ipv6PrefixLength
        self.proxyProtocol = proxyProtocol
        self.acceptProxyProtocol = acceptProxyProtocol
        self.limits = limits
        self.drain = drain
        self.cpuAffinity = cpuAffinity
        self.eventLoops = eventLoops
        self.tcpEngine = tcpEngine
        self.httpEngine = httpEngine
        self.accessLog = accessLog
        self.tls = tls
        self.reusePort = reusePort
        self.backendTLS = backendTLS
        self.httpRedirect = httpRedirect
        self.responseHeaders = responseHeaders
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, backends, mode, balance, key, algorithm, boundedLoad, health, healthPath, admin, adminAllowRemote
        case stickyCookie, trustedProxies, ipv4PrefixLength, ipv6PrefixLength, proxyProtocol, acceptProxyProtocol, limits, drain
        case cpuAffinity, tcpEngine, httpEngine
        case eventLoops, accessLog, tls, reusePort, httpRedirect, backendTLS, responseHeaders
    }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(
            in: decoder, known: CodingKeys.self,
            sections: ["limits": ProxyLimits.settingNames, "health": HealthCheckConfiguration.settingNames])
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ProxyConfiguration()
        self.init(
            listen: try c.decodeIfPresent(HostPort.self, forKey: .listen) ?? d.listen,
            backends: try c.decodeIfPresent([HostPort].self, forKey: .backends) ?? d.backends,
            mode: try c.decodeIfPresent(ProxyMode.self, forKey: .mode) ?? d.mode,
            balance: try c.decodeIfPresent(BalanceStrategy.self, forKey: .balance) ?? d.balance,
            key: try c.decodeIfPresent(KeyChain.self, forKey: .key) ?? d.key,
            algorithm: try c.decodeIfPresent(ChoiceSetting<HashAlgorithm>.self, forKey: .algorithm)?.value ?? d.algorithm,
            boundedLoad: try c.decodeIfPresent(Double.self, forKey: .boundedLoad),
            health: try c.decodeIfPresent(HealthCheckConfiguration.self, forKey: .health) ?? d.health,
            admin: try c.decodeIfPresent(HostPort.self, forKey: .admin),
            adminAllowRemote: try c.decodeIfPresent(Bool.self, forKey: .adminAllowRemote) ?? d.adminAllowRemote,
            stickyCookie: try c.decodeIfPresent(String.self, forKey: .stickyCookie) ?? d.stickyCookie,
            trustedProxies: try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? d.trustedProxies,
            ipv4PrefixLength: try c.decodeIfPresent(Int.self, forKey: .ipv4PrefixLength) ?? d.ipv4PrefixLength,
            ipv6PrefixLength: try c.decodeIfPresent(Int.self, forKey: .ipv6PrefixLength) ?? d.ipv6PrefixLength,
            proxyProtocol: try c.decodeIfPresent(ProxyProtocolVersion.self, forKey: .proxyProtocol),
            acceptProxyProtocol: try c.decodeIfPresent(Bool.self, forKey: .acceptProxyProtocol) ?? d.acceptProxyProtocol,
            limits: try c.decodeIfPresent(ProxyLimits.self, forKey: .limits) ?? d.limits,
            drain: try c.decodeIfPresent([HostPort].self, forKey: .drain),
            cpuAffinity: try c.decodeIfPresent(CPUAffinity.self, forKey: .cpuAffinity) ?? d.cpuAffinity,
            eventLoops: try c.decodeIfPresent(Int.self, forKey: .eventLoops),
            tcpEngine: try c.decodeIfPresent(TCPEngine.self, forKey: .tcpEngine) ?? d.tcpEngine,
            httpEngine: try c.decodeIfPresent(HTTPEngine.self, forKey: .httpEngine) ?? d.httpEngine,
            accessLog: try c.decodeIfPresent(Bool.self, forKey: .accessLog) ?? d.accessLog,
            tls: try c.decodeIfPresent(ProxyTLSConfiguration.self, forKey: .tls),
            reusePort: try c.decodeIfPresent(Bool.self, forKey: .reusePort) ?? d.reusePort,
            backendTLS: try c.decodeIfPresent(BackendTLSConfiguration.self, forKey: .backendTLS),
            httpRedirect: try c.decodeIfPresent(HTTPRedirectConfiguration.self, forKey: .httpRedirect),
            responseHeaders: try c.decodeIfPresent([String].self, forKey: .responseHeaders) ?? d.responseHeaders
        )
        if let path = try c.decodeIfPresent(String.self, forKey: .healthPath) { health.path = path }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(listen, forKey: .listen)
        try c.encode(backends, forKey: .backends)
        try c.encode(mode, forKey: .mode)
        try c.encode(balance, forKey: .balance)
        try c.encode(key, forKey: .key)
        try c.encode(algorithm, forKey: .algorithm)
        try c.encodeIfPresent(boundedLoad, forKey: .boundedLoad)
        try c.encode(health, forKey: .health)
        try c.encodeIfPresent(admin, forKey: .admin)
        try c.encode(adminAllowRemote, forKey: .adminAllowRemote)
        try c.encode(stickyCookie, forKey: .stickyCookie)
        try c.encode(trustedProxies, forKey: .trustedProxies)
        try c.encode(ipv4PrefixLength, forKey: .ipv4PrefixLength)
        try c.encode(ipv6PrefixLength, forKey: .ipv6PrefixLength)
        try c.encodeIfPresent(proxyProtocol, forKey: .proxyProtocol)
        try c.encode(acceptProxyProtocol, forKey: .acceptProxyProtocol)
        try c.encode(limits, forKey: .limits)
        try c.encodeIfPresent(drain, forKey: .drain)
        try c.encode(cpuAffinity, forKey: .cpuAffinity)
        try c.encodeIfPresent(eventLoops, forKey: .eventLoops)
        try c.encode(tcpEngine, forKey: .tcpEngine)
        try c.encode(httpEngine, forKey: .httpEngine)
        try c.encode(accessLog, forKey: .accessLog)
        try c.encodeIfPresent(tls, forKey: .tls)
        try c.encode(reusePort, forKey: .reusePort)
        try c.encodeIfPresent(backendTLS, forKey: .backendTLS)
        try c.encodeIfPresent(httpRedirect, forKey: .httpRedirect)
        try c.encode(responseHeaders, forKey: .responseHeaders)
    }

    /// Reads a YAML file; keys it omits keep their defaults.
    public static func load(yamlFile path: String) throws(ProxyError) -> ProxyConfiguration {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .configurationFile(path: path, reason: "cannot read it (\(error.localizedDescription))")
        }
        return try parse(yaml: text, path: path)
    }

    /// Decodes YAML text (an empty document is the defaults); a key the configuration does not have is an error.
    public static func parse(yaml text: String, path: String = "<yaml>") throws(ProxyError) -> ProxyConfiguration {
        if text.allSatisfy({ $0.isWhitespace }) { return ProxyConfiguration() }
        do { return try SettingsDecoding.decodeYAML(ProxyConfiguration.self, from: text) } catch {
            throw .configurationFile(path: path, reason: error.reason)
        }
    }

    /// ``responseHeaders`` split into names and values. A name must be a token and not a field the proxy manages
    /// (framing, hop-by-hop, `set-cookie` — a cookie belongs to the application); a value must hold no control
    /// characters.
    var responseFields: [(name: String, value: String)] {
        get throws(ProxyError) {
            let managed: Set<String> = [
                "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
                "content-length", "set-cookie", "date", "server",
            ]
            return try responseHeaders.map { (field: String) throws(ProxyError) -> (name: String, value: String) in
                guard let colon = field.firstIndex(of: ":") else {
                    throw .invalidSetting("response header '\(field)' is not 'Name: value'")
                }
                let name = String(field[..<colon])
                let value = field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty, name.utf8.allSatisfy(HTTPSyntax.isToken) else {
                    throw .invalidSetting("response header name '\(name)' is not a token")
                }
                guard !managed.contains(name.lowercased()) else {
                    throw .invalidSetting("response header '\(name)' is one the proxy or the backend sets; it cannot be added")
                }
                guard !value.isEmpty, value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                    throw .invalidSetting("response header '\(name)' has an empty value or control characters")
                }
                return (name: name, value: value)
            }
        }
    }

    /// Checks every setting; the error names the one that is wrong.
    public func validate() throws(ProxyError) {
        if backends.isEmpty && admin == nil {
            throw .invalidSetting("no backends: give at least one --backend HOST:PORT (or an --admin listener to add them later)")
        }
        var seen = Set<HostPort>()
        for backend in backends where !seen.insert(backend).inserted { throw .duplicateBackend(backend.description) }
        for backend in backends where backend.port == 0 { throw .invalidAddress(backend.description, reason: "backend port 0") }
        for backend in drain ?? [] where !seen.contains(backend) {
            throw .invalidSetting("drain lists \(backend), which is not one of the backends")
        }
        if mode == .http, let proxyProtocol {
            // It was accepted and ignored: the backends got plain HTTP heads with no word said.
            throw .invalidSetting("proxyProtocol \(proxyProtocol.rawValue) (a PROXY header towards the backends) needs --mode tcp; in http mode the backends learn the client from X-Forwarded-For and Forwarded")
        }
        if mode == .tcp && balance == .stickyCookie {
            throw .invalidSetting("--balance sticky-cookie needs --mode http (a TCP proxy cannot set cookies)")
        }
        if let boundedLoad, !(boundedLoad > 1 && boundedLoad.isFinite) {
            throw .invalidSetting("--bounded-load must be greater than 1 (e.g. 1.25), got \(boundedLoad)")
        }
        if boundedLoad != nil && balance != .hash {
            throw .invalidSetting("boundedLoad (--bounded-load) caps the hash's picks; balance \(balance.rawValue) would ignore it: leave it out")
        }
        if let admin, !admin.isLoopback, !adminAllowRemote {
            throw .invalidSetting("--admin \(admin) is not a loopback address; the admin API has no authentication (set adminAllowRemote: true in YAML to allow it)")
        }
        guard (0...32).contains(ipv4PrefixLength), (0...128).contains(ipv6PrefixLength) else {
            throw .invalidSetting("ipv4PrefixLength must be 0...32 and ipv6PrefixLength 0...128")
        }
        guard !stickyCookie.isEmpty, stickyCookie.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw .invalidSetting("stickyCookie must be a non-empty token of letters, digits, _ and -")
        }
        if let eventLoops, !(1...1024).contains(eventLoops) {
            throw .invalidSetting("--event-loops must be 1...1024, got \(eventLoops)")
        }
        try tls?.validate()
        if tls?.http2 == true && mode != .http {
            throw .invalidSetting("--http2 (tls.http2) needs --mode http: a TCP proxy passes bytes and does not know HTTP")
        }
        if let httpRedirect {
            guard tls != nil, mode == .http else {
                throw .invalidSetting("--http-redirect sends clients to HTTPS: it needs --mode http and TLS (--tls-certificate and --tls-key)")
            }
            guard httpRedirect.listen != listen || listen.port == 0 else {
                throw .invalidSetting("--http-redirect \(httpRedirect.listen) is the TLS listener's own address")
            }
            if let port = httpRedirect.httpsPort, !(1...65_535).contains(port) {
                throw .invalidSetting("httpRedirect.httpsPort must be 1...65535, got \(port)")
            }
        }
        for cidr in trustedProxies { _ = try AddressPrefix(parsing: cidr) }
        if !responseHeaders.isEmpty && mode == .tcp { throw .invalidSetting("responseHeaders needs --mode http") }
        _ = try responseFields
        try health.validate()
        try limits.validate()
    }

    /// Settings another one makes meaningless (`key: cookie:sid` under `balance: round-robin`): the proxy warns
    /// about each at start and on reload rather than dropping it without a word. (As flags they are usage errors;
    /// in a file they are kept working, since switching `balance` back and forth is a normal edit.)
    public var settingsWithoutEffect: [String] {
        var ignored: [String] = []
        if mode == .tcp && key.sources != [.ip] { ignored.append("key \(key) (mode tcp hashes the client address only)") }
        if balance != .hash && mode == .http && key.sources != [.ip] { ignored.append("key \(key) (balance \(balance.rawValue) does not hash)") }
        if balance != .hash && algorithm != .ring { ignored.append("algorithm \(algorithm) (balance \(balance.rawValue) does not hash)") }
        if mode == .http && tcpEngine != .direct { ignored.append("tcpEngine \(tcpEngine) (mode http: httpEngine says what serves it)") }
        if mode == .tcp && httpEngine != .direct { ignored.append("httpEngine \(httpEngine) (mode tcp: tcpEngine says what serves it)") }
        return ignored
    }

    /// The part of the ready line after "listening on …": `mode http, balance hash cookie:sid → ip, algorithm ring, 3 backends`.
    public var summary: String {
        var balanceText = balance.rawValue
        if balance == .hash { balanceText += " " + (mode == .tcp ? "ip" : key.description) }
        let transport = tls == nil ? "" : tls?.http2 == true ? " over TLS, HTTP/2 offered" : " over TLS"
        var text = "mode \(mode)\(transport), balance \(balanceText)"
        if balance == .hash { text += ", algorithm \(algorithm)" }
        if let boundedLoad { text += ", bounded load \(boundedLoad)" }
        text += ", \(backends.count) backend\(backends.count == 1 ? "" : "s")"
        if let limit = limits.maxRequestsPerBackend {
            text += ", at most \(limit) \(mode == .tcp ? "connection" : "request")\(limit == 1 ? "" : "s") per backend, queue timeout \(limits.queueTimeout) s"
        }
        return text
    }
}
