import ConcordProxy
import ConcordSessions
import Foundation

/// Everything one `concord lab` run needs. Loadable from a YAML scenario (`--scenario FILE`, same field names);
/// flags override the file.
///
/// Defaults (the README's first command): every strategy, 2000 users, 3 nodes, phases of 21 s in total per
/// strategy, so the whole run stays within about five minutes on two cores.
public struct LabConfiguration: Codable, Sendable {
    /// The strategies to measure, in order. Default: all of them.
    public var strategies: [LabStrategy]
    /// Virtual users (each with its own cookie jar and source address). Default 2000.
    public var users: Int
    /// App nodes at the start. Default 3.
    public var nodes: Int
    /// The phases every strategy goes through. Default: warm-up, steady, parallel, restart, crash, scale-out,
    /// scale-in (see ``defaultPhases(totalSeconds:)``).
    public var phases: [LabPhase]
    /// A user's pause between two requests (jittered ±50%). Default 1000 ms.
    public var thinkTimeMilliseconds: Int
    /// Cart additions a user fires at once in the `parallel` phase. Default 4.
    public var parallelRequests: Int
    /// Store URL for `store` and `store+near-cache` (`sqlite:PATH`, `redis://HOST:PORT`, `postgres://…`).
    /// `nil`: a fresh SQLite file per strategy under the output directory.
    public var storeURL: String?
    /// Where the report goes. Default `lab-report`.
    public var outputDirectory: String
    /// One request's limit (connect + response). Default 5 s.
    public var requestTimeoutMilliseconds: Int
    /// How long a child may take to report ready. Default 30 s.
    public var readinessTimeoutSeconds: Double
    /// Passed to every app node as `concord app --shutdown-delay`: on the restart phase's SIGTERM a node answers
    /// `/ready` 503 for this long before it stops, so the proxy's health check (every 1 s, down after 3 failures)
    /// moves users away first. Default 0 (stop at once, what the default lab measures).
    public var shutdownDelaySeconds: Double
    /// Passed to every app node as `concord app --quiesce-grace` when set: how long a node, once shutting down,
    /// keeps a connection without a request in progress open for a request already on its way. `nil`: the app's
    /// default (0.5 s); 0 closes such connections at once (how Hummingbird does it on its own).
    public var quiesceGraceSeconds: Double?
    /// Passed to every app node as `concord app --store-read-wait` when set (scenario files): how long a session read
    /// (or a write that never reached the store) may wait out an unavailable store before the request gets 503.
    /// `nil`: the app's default (0).
    public var storeReadWaitSeconds: Double?
    /// Starts `concord proxy` with `--access-log`: one line per HTTP exchange / TCP connection in
    /// `DIR/work/<strategy>/proxy.log` (status, backend, outcome), to see which requests failed and why. Default
    /// false (the log costs the proxy some CPU, docs/proxy.md).
    public var proxyAccessLog: Bool
    /// Starts `concord proxy` with `--max-requests-per-backend N` when set: each node gets at most N requests at
    /// once, the rest wait in the proxy (docs/proxy.md). `nil` (the default): no limit.
    public var proxyMaxRequestsPerBackend: Int?

    public init(
        strategies: [LabStrategy] = LabStrategy.allCases,
        users: Int = 2000,
        nodes: Int = 3,
        phases: [LabPhase] = LabConfiguration.defaultPhases(totalSeconds: 21),
        thinkTimeMilliseconds: Int = 1000,
        parallelRequests: Int = 4,
        storeURL: String? = nil,
        outputDirectory: String = "lab-report",
        requestTimeoutMilliseconds: Int = 5000,
        readinessTimeoutSeconds: Double = 30,
        shutdownDelaySeconds: Double = 0,
        quiesceGraceSeconds: Double? = nil,
        proxyAccessLog: Bool = false,
        proxyMaxRequestsPerBackend: Int? = nil
    ) {
        self.strategies = strategies
        self.users = users
        self.nodes = nodes
        self.phases = phases
        self.thinkTimeMilliseconds = thinkTimeMilliseconds
        self.parallelRequests = parallelRequests
        self.storeURL = storeURL
        self.outputDirectory = outputDirectory
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.readinessTimeoutSeconds = readinessTimeoutSeconds
        self.shutdownDelaySeconds = shutdownDelaySeconds
        self.quiesceGraceSeconds = quiesceGraceSeconds
        self.proxyAccessLog = proxyAccessLog
        self.proxyMaxRequestsPerBackend = proxyMaxRequestsPerBackend
    }

    /// The default scenario, its phases sharing `totalSeconds` in fixed proportions (warm-up 4/28 of it, …).
    public static func defaultPhases(totalSeconds: Double) -> [LabPhase] {
        let weights: [(LabPhase.Kind, Double)] = [
            (.warmUp, 4), (.steady, 4), (.parallel, 3), (.restart, 5), (.crash, 4), (.scaleOut, 4), (.scaleIn, 4),
        ]
        let sum = weights.reduce(0) { $0 + $1.1 }
        return weights.map { LabPhase(kind: $0.0, seconds: totalSeconds * $0.1 / sum) }
    }

    /// Checks limits; every traffic loop of the lab is bounded by these.
    public func validate() throws {
        guard !strategies.isEmpty else { throw LabError.invalidArgument("no strategies to run") }
        guard (1...20_000).contains(users) else { throw LabError.invalidArgument("users must be 1...20000, got \(users)") }
        guard (1...32).contains(nodes) else { throw LabError.invalidArgument("nodes must be 1...32, got \(nodes)") }
        guard !phases.isEmpty else { throw LabError.invalidArgument("the scenario has no phases") }
        // The store URL is checked in full by the first node; a form no node knows is refused before anything starts.
        if let storeURL, StoreURL(storeURL) == nil {
            throw LabError.invalidArgument("storeURL '\(StoreURL.redacted(storeURL))' is none of \(StoreURL.forms.joined(separator: ", "))")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: outputDirectory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw LabError.invalidArgument("outputDirectory \(outputDirectory) is a file; give a directory (it is created if missing)")
        }
        for phase in phases where !(0.5...600).contains(phase.seconds) {
            throw LabError.invalidArgument("phase '\(phase.name)' lasts \(phase.seconds) s; allowed 0.5...600")
        }
        for phase in phases where (phase.kind == .command) != (phase.command?.isEmpty == false) {
            throw LabError.invalidArgument(
                phase.kind == .command
                    ? "phase '\(phase.name)' is a command phase without a command"
                    : "phase '\(phase.name)' has a command, but only a phase of kind command runs one")
        }
        for phase in phases {
            if let timeout = phase.commandTimeoutSeconds, phase.kind != .command || !(0.1...600).contains(timeout) {
                throw LabError.invalidArgument("phase '\(phase.name)': commandTimeoutSeconds is for command phases, 0.1...600")
            }
        }
        guard (10...60_000).contains(thinkTimeMilliseconds) else {
            throw LabError.invalidArgument("thinkTimeMilliseconds must be 10...60000")
        }
        guard (2...32).contains(parallelRequests) else { throw LabError.invalidArgument("parallelRequests must be 2...32") }
        guard (100...60_000).contains(requestTimeoutMilliseconds) else {
            throw LabError.invalidArgument("requestTimeoutMilliseconds must be 100...60000")
        }
        guard (0...60).contains(shutdownDelaySeconds) else {
            throw LabError.invalidArgument("shutdownDelaySeconds must be 0...60, got \(shutdownDelaySeconds)")
        }
        if let storeReadWaitSeconds, !(0...60).contains(storeReadWaitSeconds) {
            throw LabError.invalidArgument("storeReadWaitSeconds must be 0...60, got \(storeReadWaitSeconds)")
        }
        if let quiesceGraceSeconds, !(0...60).contains(quiesceGraceSeconds) {
            throw LabError.invalidArgument("quiesceGraceSeconds must be 0...60, got \(quiesceGraceSeconds)")
        }
        if let proxyMaxRequestsPerBackend, proxyMaxRequestsPerBackend < 1 {
            throw LabError.invalidArgument("proxyMaxRequestsPerBackend must be at least 1, got \(proxyMaxRequestsPerBackend)")
        }
        if phases.contains(where: { $0.kind == .scaleIn }) && nodes < 2 && !phases.contains(where: { $0.kind == .scaleOut }) {
            throw LabError.invalidArgument("scale-in needs at least 2 nodes")
        }
    }

    /// A configuration from a YAML scenario; absent fields keep their defaults.
    public static func load(yaml text: String) throws -> LabConfiguration {
        do { return try SettingsDecoding.decodeYAML(LabConfiguration.self, from: text) } catch {
            throw LabError.invalidArgument("scenario YAML: \(error.reason)")
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case strategies, users, nodes, phases, thinkTimeMilliseconds, parallelRequests, storeURL, outputDirectory
        case requestTimeoutMilliseconds, readinessTimeoutSeconds, shutdownDelaySeconds, quiesceGraceSeconds, storeReadWaitSeconds
        case proxyAccessLog, proxyMaxRequestsPerBackend
    }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LabConfiguration()
        if let names = try c.decodeIfPresent([String].self, forKey: .strategies) {
            do {
                strategies = try LabStrategy.parseList(names.joined(separator: ","))
            } catch let error as LabError {
                throw DecodingError.dataCorruptedError(forKey: .strategies, in: c, debugDescription: error.invalidArgumentReason ?? "\(error)")
            }
        } else {
            strategies = defaults.strategies
        }
        users = try c.decodeIfPresent(Int.self, forKey: .users) ?? defaults.users
        nodes = try c.decodeIfPresent(Int.self, forKey: .nodes) ?? defaults.nodes
        phases = try c.decodeIfPresent([LabPhase].self, forKey: .phases) ?? defaults.phases
        thinkTimeMilliseconds = try c.decodeIfPresent(Int.self, forKey: .thinkTimeMilliseconds) ?? defaults.thinkTimeMilliseconds
        parallelRequests = try c.decodeIfPresent(Int.self, forKey: .parallelRequests) ?? defaults.parallelRequests
        storeURL = try c.decodeIfPresent(String.self, forKey: .storeURL)
        outputDirectory = try c.decodeIfPresent(String.self, forKey: .outputDirectory) ?? defaults.outputDirectory
        requestTimeoutMilliseconds =
            try c.decodeIfPresent(Int.self, forKey: .requestTimeoutMilliseconds) ?? defaults.requestTimeoutMilliseconds
        readinessTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .readinessTimeoutSeconds) ?? defaults.readinessTimeoutSeconds
        shutdownDelaySeconds = try c.decodeIfPresent(Double.self, forKey: .shutdownDelaySeconds) ?? defaults.shutdownDelaySeconds
        quiesceGraceSeconds = try c.decodeIfPresent(Double.self, forKey: .quiesceGraceSeconds)
        storeReadWaitSeconds = try c.decodeIfPresent(Double.self, forKey: .storeReadWaitSeconds)
        proxyAccessLog = try c.decodeIfPresent(Bool.self, forKey: .proxyAccessLog) ?? defaults.proxyAccessLog
        proxyMaxRequestsPerBackend = try c.decodeIfPresent(Int.self, forKey: .proxyMaxRequestsPerBackend)
    }
}
