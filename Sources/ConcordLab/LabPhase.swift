import ConcordProxy

/// One bounded stretch of a lab run, and the event injected into the cluster during it.
public struct LabPhase: Codable, Sendable, Hashable {
    /// What happens to the cluster in the phase (users keep browsing throughout).
    public enum Kind: String, Codable, Sendable, SettingChoice {
        /// Users log in, staggered over the phase.
        case warmUp = "warm-up"
        /// Nothing is injected: the baseline.
        case steady
        /// Each user fires several cart additions at once (as a browser with several tabs does).
        case parallel
        /// One node is stopped gracefully (SIGTERM) and started again on the same port.
        case restart
        /// One node is killed (SIGKILL) and started again on the same port.
        case crash
        /// One node is added.
        case scaleOut = "scale-out"
        /// The newest node is removed (drained from the proxy, then stopped gracefully).
        case scaleIn = "scale-in"
        /// The proxy itself is replaced: a new `concord proxy` starts on the same address (SO_REUSEPORT), then the
        /// old one is stopped gracefully — the upgrade of docs/proxy.md. Not in the default scenario.
        case proxyUpgrade = "proxy-upgrade"
        /// The phase's `command` runs (`/bin/sh -c`): a fault outside the lab's own processes, such as the Redis
        /// primary of a `--store redis-sentinel://…` killed (scripts/store-failover-check). It must end within
        /// `commandTimeoutSeconds` (default: the phase's time plus 30 s); a non-zero exit fails the run. Scenario
        /// files only.
        case command
    }

    /// The name in reports (defaults to the kind's name).
    public var name: String
    public var kind: Kind
    /// How long the phase lasts.
    public var seconds: Double
    /// The shell command of a `command` phase (only there).
    public var command: String?
    /// How long that command may run; `nil`: the phase's `seconds` plus 30.
    public var commandTimeoutSeconds: Double?

    public init(name: String? = nil, kind: Kind, seconds: Double, command: String? = nil, commandTimeoutSeconds: Double? = nil) {
        self.name = name ?? kind.rawValue
        self.kind = kind
        self.seconds = seconds
        self.command = command
        self.commandTimeoutSeconds = commandTimeoutSeconds
    }

    /// How long the command may run.
    var commandTimeout: Duration { .seconds(commandTimeoutSeconds ?? seconds + 30) }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, kind, seconds, command, commandTimeoutSeconds }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(Kind.self, forKey: .kind)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? kind.rawValue
        seconds = try container.decode(Double.self, forKey: .seconds)
        command = try container.decodeIfPresent(String.self, forKey: .command)
        commandTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .commandTimeoutSeconds)
    }
}
