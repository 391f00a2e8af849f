/// Active and passive health checking. Durations are seconds.
public struct HealthCheckConfiguration: Sendable, Hashable, Codable {
    /// HTTP path probed with GET (a 2xx or 3xx answer is healthy); `nil` probes with a TCP connect. Default `nil`.
    public var path: String?
    /// Seconds between probes of one backend. Default 1.
    public var interval: Double
    /// Seconds a probe may take. Default 1.
    public var timeout: Double
    /// Consecutive successes that bring a down backend up. Default 2.
    public var rise: Int
    /// Consecutive failures that take an up backend down. Default 3.
    public var fall: Int
    /// Consecutive failed connects by real traffic that eject a backend at once (passive check); 0 disables.
    /// Default 1: a refused connect is definite on a LAN, and the active check brings it back.
    public var ejectAfterConnectFailures: Int

    public init(path: String? = nil, interval: Double = 1, timeout: Double = 1, rise: Int = 2, fall: Int = 3,
                ejectAfterConnectFailures: Int = 1) {
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
        self.ejectAfterConnectFailures = ejectAfterConnectFailures
    }

    /// The YAML keys of this section (for the hint when one is written a level too high).
    static var settingNames: [String] { CodingKeys.allCases.map(\.stringValue) }

    private enum CodingKeys: String, CodingKey, CaseIterable { case path, interval, timeout, rise, fall, ejectAfterConnectFailures }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = HealthCheckConfiguration()
        self.init(
            path: try c.decodeIfPresent(String.self, forKey: .path),
            interval: try c.decodeIfPresent(Double.self, forKey: .interval) ?? d.interval,
            timeout: try c.decodeIfPresent(Double.self, forKey: .timeout) ?? d.timeout,
            rise: try c.decodeIfPresent(Int.self, forKey: .rise) ?? d.rise,
            fall: try c.decodeIfPresent(Int.self, forKey: .fall) ?? d.fall,
            ejectAfterConnectFailures: try c.decodeIfPresent(Int.self, forKey: .ejectAfterConnectFailures)
                ?? d.ejectAfterConnectFailures
        )
    }

    func validate() throws(ProxyError) {
        for (name, value) in [("interval", interval), ("timeout", timeout)] where !(value > 0 && value < 3600) {
            throw .invalidSetting("health.\(name) must be more than 0 and less than 3600 seconds, got \(value)")
        }
        guard rise >= 1, fall >= 1 else { throw .invalidSetting("health.rise and health.fall must be at least 1") }
        guard ejectAfterConnectFailures >= 0 else { throw .invalidSetting("health.ejectAfterConnectFailures must be ≥ 0") }
        if let path, !path.hasPrefix("/") { throw .invalidSetting("the health path (health.path, --health-path) must start with /, got '\(path)'") }
    }
}
