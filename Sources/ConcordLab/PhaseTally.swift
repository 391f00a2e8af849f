import Histogram

/// What the lab saw during one phase of one strategy's run.
public struct PhaseTally: Sendable {
    /// Users that made at least one request in the phase.
    public var activeUsers: Set<Int> = []
    /// Users that found their session gone (redirected to the login page, or an empty cart after login).
    public var lostUsers: Set<Int> = []
    /// Completed HTTP exchanges plus transport failures.
    public var requests = 0
    /// Transport errors, timeouts and 5xx answers.
    public var failedRequests = 0
    /// Why requests failed, by a short reason, to explain failures in the report.
    public var failureReasons: [String: Int] = [:]
    /// Requests resent once on a new connection because their reused keep-alive connection closed before any
    /// response, as browsers do (counted in `requests` once; a failed resend is a failure).
    public var resentRequests = 0
    /// Response latency in microseconds (completed exchanges only).
    public var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    /// Requests answered per node (`X-Concord-Node`).
    public var requestsPerNode: [String: Int] = [:]
    /// Nodes that ran during the phase (a node that answered nothing still counts in the balance).
    public var liveNodes: Set<String> = []
    /// Cookie header bytes sent plus response head bytes received.
    public var internetBytes = 0
    /// Cart items acknowledged to the user but missing from the cart later while the session lived.
    public var lostCartItems = 0
    /// Replication and store bytes, from the nodes' `/metrics`.
    public var intranetBytes = 0
    /// Peak resident set size per node seen during the phase.
    public var peakResidentBytes: [String: Int] = [:]

    public init() {}
}
