import ArgumentParser
import ConcordSessions

/// `concord bench stores`: session-store throughput per backend — `load` and versioned `save` operations per
/// second at each concurrency — and, where the backend has a native benchmark tool, the ratio to it measured in the
/// same run (Redis: `redis-benchmark -t get,set`).
struct BenchStoresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stores",
        abstract: "Measure load/save operations per second of each session store (and the ratio to its native tool)."
    )

    @Option(name: .customLong("backend"), help: "Backends to measure (repeatable): \(StoreBenchmarkBackend.all.map(\.name).joined(separator: ", ")).")
    var backends: [String] = StoreBenchmarkBackend.all.map(\.name)

    @Option(name: .customLong("concurrency"), help: "Concurrent callers (repeatable).")
    var concurrencies: [Int] = [1, 64]

    @Option(help: "Operations per measurement.")
    var operations: Int = 50_000

    @Option(help: "Session payload size in bytes.")
    var payloadSize: Int = 256

    @Option(help: "Use this server instead of starting one (only with a single --backend).")
    var url: String?

    @Option(help: "Use this PostgreSQL server (postgres://user@host:port/db) for the postgres backends instead of starting one.")
    var postgres: String?

    func validate() throws {
        let known = Set(StoreBenchmarkBackend.all.map(\.name))
        for name in backends where !known.contains(name) {
            throw ValidationError("unknown backend '\(name)'; known: \(known.sorted().joined(separator: ", "))")
        }
        guard concurrencies.allSatisfy({ $0 >= 1 && $0 <= 4096 }) else { throw ValidationError("concurrency must be 1…4096") }
        guard operations >= 100, operations <= 10_000_000 else { throw ValidationError("operations must be 100…10,000,000") }
        guard payloadSize >= 0, payloadSize <= 1 << 20 else { throw ValidationError("payload size must be 0…1 MiB") }
        if url != nil, backends.count != 1 { throw ValidationError("--url needs exactly one --backend") }
    }

    func run() async throws {
        print(pad("backend", 20) + "concurrency  load ops/s  save ops/s  peer                 peer read/s  peer write/s  load/peer  save/peer")
        for backend in StoreBenchmarkBackend.all where backends.contains(backend.name) {
            let target = try await backend.start(StoreBenchmarkOptions(url: url, postgresURL: postgres))
            do {
                for concurrency in concurrencies {
                    try await measure(backend: backend.name, target: target, concurrency: concurrency)
                }
                if let report = target.report { print(report()) }
                await target.stop()
            } catch {
                await target.stop()
                throw error
            }
        }
    }

    private func measure(backend: String, target: StoreBenchmarkTarget, concurrency: Int) async throws {
        let store = target.store
        let payload = [UInt8](repeating: 0x61, count: payloadSize)
        let prefix = "bench-\(concurrency)-"
        // Each caller owns one session and saves it with its version (compare-and-set), as a web request would.
        for caller in 0..<concurrency {
            _ = try await store.save(StoredSession(id: "\(prefix)\(caller)", payload: payload), ttl: .seconds(600), expectedVersion: nil)
        }
        let executor = target.callerExecutor
        _ = try await run(concurrency: concurrency, operations: min(operations, 2_000), executor: executor) { caller, _ in
            _ = try await store.load(id: "\(prefix)\(caller)")
        }  // warm-up: connections, scripts, caches
        let loadRate = try await run(concurrency: concurrency, operations: operations, executor: executor) { caller, _ in
            guard try await store.load(id: "\(prefix)\(caller)") != nil else { throw BenchStoresError("session vanished") }
        }
        let saveRate = try await run(concurrency: concurrency, operations: operations, perCaller: true, executor: executor) { caller, count in
            let id = "\(prefix)\(caller)"
            var version = try await store.version(id: id) ?? 0
            for _ in 0..<count {
                version = try await store.save(StoredSession(id: id, payload: payload), ttl: .seconds(600), expectedVersion: version)
            }
        }
        var line = pad(backend, 20) + pad(String(concurrency), 13) + pad(rate(loadRate), 12) + pad(rate(saveRate), 12)
        if let peer = target.peer {
            let result = try await peer(concurrency, operations, payloadSize)
            line += pad(result.tool, 21) + pad(rate(result.readsPerSecond), 13) + pad(rate(result.writesPerSecond), 14)
            line += pad(ratio(loadRate / result.readsPerSecond), 11) + ratio(saveRate / result.writesPerSecond)
        } else {
            line += pad("-", 21) + pad("-", 13) + pad("-", 14) + pad("-", 11) + "-"
        }
        print(line)
    }

    /// Runs `operations` calls of `body` split over `concurrency` callers; returns operations per second.
    /// With `perCaller`, `body` runs once per caller and performs `count` operations itself.
    private func run(
        concurrency: Int, operations: Int, perCaller: Bool = false, executor: (any TaskExecutor)?,
        _ body: @escaping @Sendable (_ caller: Int, _ count: Int) async throws -> Void
    ) async throws -> Double {
        let share = max(1, operations / concurrency)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<concurrency {
                group.addTask(executorPreference: executor) {
                    if perCaller {
                        try await body(caller, share)
                    } else {
                        for _ in 0..<share { try await body(caller, 1) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(share * concurrency) / seconds
    }

    private func rate(_ value: Double) -> String { String(Int(value.rounded())) }
    private func ratio(_ value: Double) -> String { String(Double(Int(value * 100)) / 100) + "x" }
    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

struct BenchStoresError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
