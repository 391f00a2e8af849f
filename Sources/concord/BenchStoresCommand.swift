import ArgumentParser
import ConcordLab
import ConcordPostgres
import ConcordRedis
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

    @Option(help: "Operations per measurement (split over the rounds).")
    var operations: Int = 50_000

    @Option(help: "Interleaved rounds per measurement: store loads, store saves and the peer tool each round, in an order that rotates, each step warmed up unmeasured for 150 ms; the median is reported.")
    var rounds: Int = 5

    @Flag(help: "Also measure the layers under a save (Redis: client SET, an empty script, the compare-and-set script), in the same rounds.")
    var breakdown = false

    @Option(help: "Session payload size in bytes.")
    var payloadSize: Int = 256

    @Option(help: "Use this server instead of starting one (only with a single --backend): redis://HOST:PORT[/DB] (written into: use a scratch database), postgres://USER@HOST:PORT/DB, or for sqlite a file, as PATH or sqlite:PATH.")
    var url: String?

    @Option(help: "Use this PostgreSQL server (postgres://user@host:port/db) for the postgres backends instead of starting one.")
    var postgres: String?

    @Flag(help: "Make SwiftNIO's event loops Swift Concurrency's global executor first (as Vapor's app template does), so the `redis` callers run on the loops their connections use.")
    var nioGlobalExecutor = false

    func validate() throws {
        let known = Set(StoreBenchmarkBackend.all.map(\.name))
        for name in backends where !known.contains(name) {
            throw ValidationError("unknown backend '\(name)'; known: \(known.sorted().joined(separator: ", "))")
        }
        guard concurrencies.allSatisfy({ $0 >= 1 && $0 <= 4096 }) else { throw ValidationError("concurrency must be 1…4096") }
        guard operations >= 100, operations <= 10_000_000 else { throw ValidationError("operations must be 100…10,000,000") }
        guard rounds >= 1, rounds <= 99 else { throw ValidationError("rounds must be 1…99") }
        guard operations / rounds >= 100 else {
            throw ValidationError(
                "--operations \(operations) over --rounds \(rounds) is \(operations / rounds) per round; a round needs at least 100: "
                    + "give --operations \(rounds * 100) or more, or fewer --rounds")
        }
        guard payloadSize >= 0, payloadSize <= 1 << 20 else { throw ValidationError("payload size must be 0…1 MiB") }
        if url != nil, backends.count != 1 { throw ValidationError("--url needs exactly one --backend") }
        // A URL its backend cannot read is a usage error, found before anything starts (exit 64, as concord app).
        if let url, let backend = backends.first {
            do {
                if backend.hasPrefix("redis") {
                    _ = try RedisSessionStoreConfiguration(storeURL: url)
                } else if backend.hasPrefix("postgres") {
                    _ = try PostgresSessionStoreConfiguration(url: url)
                }
            } catch {
                throw ValidationError("--url \(StoreURL.redacted(url)): \(error)")
            }
        }
    }

    func run() async throws {
        if nioGlobalExecutor { try NIOGlobalExecutor.install() }
        // Ctrl-C or SIGTERM stops the servers this benchmark started (``RedisBenchmarkServer``) before exiting.
        let signalSources = ChildRegistry.shared.installSignalHandlers { number in
            Progress.say("\ninterrupted (signal \(number)); stopping \(ChildRegistry.shared.running.count) child processes")
        }
        defer {
            for source in signalSources { source.cancel() }
            ChildRegistry.shared.terminateAll()
        }
        var headerPrinted = false
        for backend in StoreBenchmarkBackend.all where backends.contains(backend.name) {
            let target = try await backend.start(StoreBenchmarkOptions(url: url, postgresURL: postgres, payloadSize: payloadSize))
            do {
                _ = try await target.store.load(id: "bench-reachability-probe")
            } catch {
                await target.stop()
                throw BenchStoresError("\(backend.name): the store does not answer (\(error)); nothing was measured")
            }
            // After the first store answered: a run that cannot start prints its error, not an empty table.
            if !headerPrinted {
                headerPrinted = true
                print(pad("backend", 20) + "concurrency  load ops/s  save ops/s  peer                 peer read/s  peer write/s  load/peer  save/peer  save/peer range")
                print("(medians of \(rounds) interleaved rounds of \(operations / rounds) operations; ratios per round)")
            }
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
        _ = try await run(concurrency: concurrency, operations: min(operations, 2_000), warmUp: nil, executor: executor) { caller, _ in
            _ = try await store.load(id: "\(prefix)\(caller)")
        }  // warm-up: connections, scripts, caches
        // Rounds interleave the store and its peer tool, so a stretch of other work on the machine (concurrency 1 is
        // mostly wake-up latency) lands on both sides; each ratio comes from one round, and the medians are reported.
        // Each measured step first runs its operation unmeasured for a moment (``warmUp``): on this kind of VM a step
        // that starts right after `redis-benchmark` exits runs up to 1.6× faster for its first ≈ 70 ms (≈ 27 k against
        // ≈ 17 k loads/s at concurrency 1), and with a fixed order that went to whichever step came first. The order
        // of the steps also rotates from round to round.
        let perRound = operations / rounds
        var rates: [String: [Double]] = [:], ratios: [String: [Double]] = [:]
        var peerReads: [Double] = [], peerWrites: [Double] = []
        // Per round, the store's save rate over the peer tool doing the same work (a layer marked as the ceiling).
        var ceilingRatios: [Double] = []
        var peerTool = "-"
        let loadStep = "load", saveStep = "save", peerStep = "peer"
        let layers = breakdown ? target.layers : []
        var steps = [loadStep, saveStep] + layers.map(\.name)
        if target.peer != nil { steps.append(peerStep) }
        for round in 1...rounds {
            Progress.say("[bench stores] \(backend), concurrency \(concurrency): round \(round) of \(rounds)")
            let shift = (round - 1) % steps.count
            var roundRates: [String: Double] = [:]
            var peerResult: StoreBenchmarkPeerResult?
            for step in steps[shift...] + steps[..<shift] {
                switch step {
                case loadStep:
                    roundRates[step] = try await run(concurrency: concurrency, operations: perRound, executor: executor) { caller, _ in
                        guard try await store.load(id: "\(prefix)\(caller)") != nil else { throw BenchStoresError("session vanished") }
                    }
                case saveStep:
                    roundRates[step] = try await run(
                        concurrency: concurrency, operations: perRound, perCaller: true, executor: executor
                    ) { caller, count in
                        let id = "\(prefix)\(caller)"
                        var version = try await store.version(id: id) ?? 0
                        for _ in 0..<count {
                            version = try await store.save(StoredSession(id: id, payload: payload), ttl: .seconds(600), expectedVersion: version)
                        }
                    }
                case peerStep:
                    peerResult = try await target.peer?(concurrency, perRound, payloadSize)
                default:
                    guard let layer = layers.first(where: { $0.name == step }) else { continue }
                    switch layer.measurement {
                    case .operation(let operation):
                        roundRates[step] = try await run(concurrency: concurrency, operations: perRound, executor: executor) { caller, _ in
                            try await operation(caller)
                        }
                    case .tool(_, let measure):
                        roundRates[step] = try await measure(concurrency, perRound)
                    }
                }
            }
            for (step, rate) in roundRates { rates[step, default: []].append(rate) }
            if let ceiling = layers.first(where: \.isCeiling), let save = roundRates[saveStep], let best = roundRates[ceiling.name] {
                ceilingRatios.append(save / best)
            }
            if let peerResult {
                peerTool = peerResult.tool
                peerReads.append(peerResult.readsPerSecond)
                peerWrites.append(peerResult.writesPerSecond)
                for (step, rate) in roundRates {
                    // Loads are compared with the tool's reads, saves and the layers under a save with its writes.
                    let peerRate = step == loadStep ? peerResult.readsPerSecond : peerResult.writesPerSecond
                    ratios[step, default: []].append(rate / peerRate)
                }
            }
        }
        let loadRates = rates[loadStep] ?? [], saveRates = rates[saveStep] ?? []
        let loadRatios = ratios[loadStep] ?? [], saveRatios = ratios[saveStep] ?? []
        var line = pad(backend, 20) + pad(String(concurrency), 13) + pad(rate(loadRates.median), 12) + pad(rate(saveRates.median), 12)
        if !peerReads.isEmpty {
            line += pad(peerTool, 21) + pad(rate(peerReads.median), 13) + pad(rate(peerWrites.median), 14)
            line += pad(ratio(loadRatios.median), 11) + pad(ratio(saveRatios.median), 11)
            line += range(saveRatios)
        } else {
            line += pad("-", 21) + pad("-", 13) + pad("-", 14) + pad("-", 11) + pad("-", 11) + "-"
        }
        print(line)
        // Each layer's ratio, like save/peer, is the median of its per-round ratios to the peer's writes.
        var layerLines = layers.map { ($0.name, rates[$0.name] ?? [], ratios[$0.name] ?? []) }
        if !layerLines.isEmpty { layerLines.append(("store save (the row above)", saveRates, saveRatios)) }
        for (name, rates, ratios) in layerLines {
            print("  " + pad(name, 50) + pad(rate(rates.median) + " ops/s", 14)
                + (ratios.isEmpty ? "" : ratio(ratios.median) + " of the peer's writes"))
        }
        if let ceiling = layers.first(where: \.isCeiling), !ceilingRatios.isEmpty {
            print("  store save / \(ceiling.name): \(ratio(ceilingRatios.median)) (\(range(ceilingRatios)))")
        }
    }

    /// How long each measured step runs unmeasured first (see the rounds in ``measure(backend:target:concurrency:)``).
    static let warmUp = Duration.milliseconds(150)

    /// Runs `operations` calls of `body` split over `concurrency` callers; returns operations per second.
    /// With `perCaller`, `body` runs once per caller and performs `count` operations itself. With `warmUp`, every
    /// caller first calls `body` with a count of 1 until that much time has passed, unmeasured.
    private func run(
        concurrency: Int, operations: Int, perCaller: Bool = false, warmUp: Duration? = Self.warmUp,
        executor: (any TaskExecutor)?, _ body: @escaping @Sendable (_ caller: Int, _ count: Int) async throws -> Void
    ) async throws -> Double {
        if let warmUp {
            let end = ContinuousClock.now + warmUp
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<concurrency {
                    group.addTask(executorPreference: executor) {
                        while ContinuousClock.now < end { try await body(caller, 1) }
                    }
                }
                try await group.waitForAll()
            }
        }
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
    private func range(_ values: [Double]) -> String {
        guard let low = values.min(), let high = values.max() else { return "-" }
        return ratio(low) + "–" + ratio(high)
    }
    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

struct BenchStoresError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
