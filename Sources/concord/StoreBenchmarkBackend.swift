import ConcordSessions

/// One session store that `concord bench stores` can measure. To add a backend, write a
/// `StoreBenchmarkBackend+Name.swift` with a `static let name: StoreBenchmarkBackend` and list it in ``all``.
struct StoreBenchmarkBackend: Sendable {
    /// What `--backend` selects, e.g. `redis`.
    var name: String
    /// Starts the backend (a server of its own when it needs one) and returns the store to measure.
    var start: @Sendable (StoreBenchmarkOptions) async throws -> StoreBenchmarkTarget

    /// Every backend the command knows, in the order it reports them.
    static let all: [StoreBenchmarkBackend] = [.memory, .sqlite, .postgres, .postgresNearCache, .redis, .redisEventLoop]
}

/// The running backend: the store, an optional native peer to compare against, and how to stop both.
struct StoreBenchmarkTarget: Sendable {
    var store: any SessionStore
    /// Measures the backend's own tool at the same concurrency (e.g. `redis-benchmark -t get,set`).
    var peer: (@Sendable (_ concurrency: Int, _ operations: Int, _ payloadSize: Int) async throws -> StoreBenchmarkPeerResult)?
    var stop: @Sendable () async -> Void
    /// A line printed after the backend's figures (e.g. what a near cache saved), when given.
    var report: (@Sendable () -> String)? = nil
    /// Where the callers run: the global concurrent executor when `nil` (as a Hummingbird handler does).
    var callerExecutor: (any TaskExecutor)? = nil
    /// What `--breakdown` measures besides `load` and `save`: the layers under a save, cheapest first, so that
    /// the rates show where a save's time goes (Redis: a plain `SET`, a script that does nothing, the store's
    /// compare-and-set script, each through the store's client; then that script sent by the peer tool).
    var layers: [StoreBenchmarkLayer] = []
}

/// One thing `--breakdown` measures, through the store's client or by the peer tool.
struct StoreBenchmarkLayer: Sendable {
    enum Measurement: Sendable {
        /// One operation in this process; `caller` numbers the concurrent callers from 0.
        case operation(@Sendable (_ caller: Int) async throws -> Void)
        /// The peer tool's own run at this concurrency and count; returns operations per second. Marked
        /// `ceiling`, it is the same work as a save done by the tool, and the save's line also shows its ratio to it.
        case tool(ceiling: Bool, @Sendable (_ concurrency: Int, _ operations: Int) async throws -> Double)
    }
    var name: String
    var measurement: Measurement

    init(name: String, operation: @escaping @Sendable (_ caller: Int) async throws -> Void) {
        self.name = name
        self.measurement = .operation(operation)
    }

    init(name: String, ceiling: Bool, tool: @escaping @Sendable (_ concurrency: Int, _ operations: Int) async throws -> Double) {
        self.name = name
        self.measurement = .tool(ceiling: ceiling, tool)
    }

    var isCeiling: Bool {
        if case .tool(true, _) = measurement { return true }
        return false
    }
}

/// The native tool's figures: reads (the peer of `load`) and writes (the peer of `save`) per second.
struct StoreBenchmarkPeerResult: Sendable {
    var tool: String
    var readsPerSecond: Double
    var writesPerSecond: Double
}

struct StoreBenchmarkOptions: Sendable {
    /// A server to use instead of starting one (backend-specific URL), when given.
    var url: String?
    /// A PostgreSQL server for the `postgres` backends (`--postgres`), instead of starting one.
    var postgresURL: String?
    /// The session payload size (`--payload-size`), for backends that build records of their own.
    var payloadSize = 256
}
