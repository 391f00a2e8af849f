import ArgumentParser
import ConcordHashing
import Foundation

/// `concord bench hashing`: compares the key→node algorithms on lookup speed, balance, keys moved on
/// membership change, build time and memory.
struct BenchHashingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hashing",
        abstract: "Compare modulo, ring, jump, maglev, rendezvous and bounded-load hashing.",
        discussion: """
            For each algorithm and node count: lookup ns/op, peak/mean load over the keys, the fraction of keys \
            that move when a node is added (n→n+1) and when one in the middle is removed (n→n−1) next to the ideal \
            (1/(n+1) and 1/n), build time and the structure's memory. `bounded` is the ring with bounded loads \
            (keys placed one by one, each on the first node of its probe sequence under the cap).
            Run it from a release build: swift run -c release concord bench hashing
            """
    )

    @Option(help: "Node counts to measure, comma-separated.")
    var nodes: String = "3,10,100,1000"

    @Option(help: "Keys to map for balance and movement figures.")
    var keys: Int = 1_000_000

    @Option(name: .customLong("bounded-factor"), help: "Cap factor c for the bounded-load row (a node holds at most c × the mean).")
    var boundedFactor: Double = 1.05

    @Option(help: "Algorithms to measure, comma-separated (modulo, ring, jump, maglev, rendezvous, bounded).")
    var algorithms: String = "modulo,ring,jump,maglev,rendezvous,bounded"

    @Flag(help: "Print a JSON array (one object per algorithm and node count) instead of the table.")
    var json = false

    func validate() throws {
        guard keys >= 1_000, keys <= 50_000_000 else { throw ValidationError("--keys must be 1000...50000000") }
        guard boundedFactor > 1 else { throw ValidationError("--bounded-factor must be greater than 1 (e.g. 1.05)") }
        guard !(try nodeCounts()).isEmpty else { throw ValidationError("--nodes needs at least one count") }
        _ = try algorithmNames()
    }

    func nodeCounts() throws -> [Int] {
        try nodes.split(separator: ",").map {
            guard let n = Int($0.trimmingCharacters(in: .whitespaces)), (2...100_000).contains(n) else {
                throw ValidationError("--nodes: '\($0)' is not a node count in 2...100000")
            }
            return n
        }
    }

    func algorithmNames() throws -> [String] {
        let valid = HashAlgorithm.allCases.map(\.rawValue) + ["bounded"]
        return try algorithms.split(separator: ",").map {
            let name = $0.trimmingCharacters(in: .whitespaces).lowercased()
            guard valid.contains(name) else {
                throw ValidationError("--algorithms: unknown '\(name)'; expected \(valid.joined(separator: ", "))")
            }
            return name
        }
    }

    func run() throws {
        #if DEBUG
        Progress.say("warning: this is a debug build; figures are meaningful only with `swift run -c release concord bench hashing`")
        #endif
        let counts = try nodeCounts()
        let names = try algorithmNames()
        Progress.say("hashing \(keys) keys for \(names.count) algorithms × \(counts.count) node counts…")
        let keyHashes = (0..<keys).map { KeyHash.hash("user-\($0)") }
        let bench = HashingBenchmark(keyHashes: keyHashes, boundedFactor: boundedFactor)
        var results: [HashingBenchmark.Result] = []
        for name in names {
            for n in counts {
                let started = ContinuousClock.now
                results.append(try bench.measure(algorithm: name, nodes: n))
                Progress.say("  \(name) n=\(n) done in \(started.duration(to: .now).formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        } else {
            print(Self.table(results, keys: keys, factor: boundedFactor))
        }
    }

    static func table(_ results: [HashingBenchmark.Result], keys: Int, factor: Double) -> String {
        var table = TextTable([
            "algorithm", "nodes", "lookup ns", "peak/mean", "exact p/m", "moved +1", "ideal +1", "moved -1", "ideal -1", "build ms", "memory",
        ])
        for r in results {
            table.append([
                r.algorithm, "\(r.nodes)", fmt(r.lookupNanos, 1), fmt(r.peakToMean, 3), r.exactPeakToMean.map { fmt($0, 3) } ?? "-",
                fmt(r.movedOnAdd, 4), fmt(r.idealMovedOnAdd, 4), fmt(r.movedOnRemove, 4), fmt(r.idealMovedOnRemove, 4),
                fmt(r.buildMillis, 2), bytes(r.memoryBytes),
            ])
        }
        return table.render() + """


            \(keys) keys. lookup ns: thread CPU time per owner lookup of a precomputed key hash. peak/mean: over the \
            keys (sampling alone adds ≈3.2/√(keys/n)); exact p/m: of the structure's own key-space shares. \
            moved -1 removes the node in the middle of the list. bounded = ring with bounded loads, c = \(factor).
            """
    }

    static func fmt(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / 1_048_576) : String(format: "%.1f KiB", Double(n) / 1024)
    }
}
