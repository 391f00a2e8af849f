/// One row of `results.json`: what one strategy did in one phase. Other tools read these names; keep them.
public struct LabResult: Codable, Sendable, Hashable {
    public var strategy: String
    public var phase: String
    /// How users reached the nodes (proxy mode, or the lab's own round-robin).
    public var balancing: String
    public var activeUsers: Int
    public var lostSessions: Int
    public var lostSessionsPercent: Double
    public var requests: Int
    public var failedRequests: Int
    public var p50Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    public var requestsPerNode: [String: Int]
    public var maxOverMeanLoad: Double
    public var lostCartItems: Int
    public var intranetBytesPerRequest: Double
    public var internetBytesPerRequest: Double
    public var peakRssBytes: Int
    /// Failed requests by reason (`timeout`, `connection error`, `HTTP 503`, …).
    public var failureReasons: [String: Int]
    /// Requests resent once, as browsers do, because their reused keep-alive connection closed before any response
    /// (a node stopping closes its idle connections); not failures unless the resend failed too.
    public var resentRequests: Int

    public init(strategy: String, phase: String, balancing: String, tally: PhaseTally) {
        self.strategy = strategy
        self.phase = phase
        self.balancing = balancing
        activeUsers = tally.activeUsers.count
        lostSessions = tally.lostUsers.count
        lostSessionsPercent = activeUsers == 0 ? 0 : Double(lostSessions) * 100 / Double(activeUsers)
        requests = tally.requests
        failedRequests = tally.failedRequests
        let milliseconds = { (percentile: Double) -> Double in
            tally.latency.totalCount == 0 ? 0 : Double(tally.latency.valueAtPercentile(percentile)) / 1000
        }
        p50Ms = milliseconds(50)
        p99Ms = milliseconds(99)
        p999Ms = milliseconds(99.9)
        var perNode = tally.requestsPerNode
        for node in tally.liveNodes where perNode[node] == nil { perNode[node] = 0 }
        requestsPerNode = perNode
        let total = perNode.values.reduce(0, +)
        let mean = perNode.isEmpty ? 0 : Double(total) / Double(perNode.count)
        maxOverMeanLoad = mean == 0 ? 0 : Double(perNode.values.max() ?? 0) / mean
        lostCartItems = tally.lostCartItems
        intranetBytesPerRequest = requests == 0 ? 0 : Double(tally.intranetBytes) / Double(requests)
        internetBytesPerRequest = requests == 0 ? 0 : Double(tally.internetBytes) / Double(requests)
        peakRssBytes = tally.peakResidentBytes.values.max() ?? 0
        failureReasons = tally.failureReasons
        resentRequests = tally.resentRequests
    }
}

/// A strategy the lab did not measure, and why (never a made-up figure in its place).
public struct LabSkipped: Codable, Sendable, Hashable {
    public var strategy: String
    public var reason: String

    public init(strategy: String, reason: String) {
        self.strategy = strategy
        self.reason = reason
    }
}
