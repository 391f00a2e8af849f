import ArgumentParser
import Foundation
import Logging

/// `concord bench replication`: what `sync` and `ring` replication cost on loopback — lag, bytes per write,
/// memory per node, and how long an empty node takes to become ready.
struct BenchReplicationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replication",
        abstract: "Measure session replication: lag, bytes per write (sync vs ring), rejoin time.",
        discussion: """
            Three figures, each from in-process clusters on loopback: (1) replication lag p50/p99 of a 3-node \
            `sync` cluster while one node writes new sessions at --rate per second; (2) replication bytes sent per \
            session write and records held per node for `sync` and `ring` (k = 1) at each --nodes count, writing \
            through each session's owner as the proxy routes them; (3) seconds for a node restarted empty to copy \
            its state from its peers and report ready, with --sessions sessions in the cluster.
            Run it from a release build: swift run -c release concord bench replication
            """
    )

    @Option(help: "Writes per second for the lag and bytes figures.")
    var rate: Int = 5_000

    @Option(help: "Seconds of writing for the lag figure.")
    var seconds: Double = 3

    @Option(help: "Node counts for the bytes-per-write figure, comma-separated.")
    var nodes: String = "3,5,9"

    @Option(help: "Session writes per node count for the bytes-per-write figure.")
    var writes: Int = 5_000

    @Option(help: "Sessions in the cluster for the rejoin figure.")
    var sessions: Int = 100_000

    @Option(help: "Bytes of session payload.")
    var payload: Int = 256

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(rate) else { throw ValidationError("--rate must be 1...1000000") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard (1...1_000_000).contains(writes) else { throw ValidationError("--writes must be 1...1000000") }
        guard (1...2_000_000).contains(sessions) else { throw ValidationError("--sessions must be 1...2000000") }
        guard (8...(256 << 10)).contains(payload) else { throw ValidationError("--payload must be 8...262144") }
        _ = try nodeCounts()
    }

    func nodeCounts() throws -> [Int] {
        let counts = try nodes.split(separator: ",").map {
            guard let n = Int($0.trimmingCharacters(in: .whitespaces)), (2...32).contains(n) else {
                throw ValidationError("--nodes: '\($0)' is not a node count in 2...32")
            }
            return n
        }
        guard !counts.isEmpty else { throw ValidationError("--nodes needs at least one count") }
        return counts
    }

    struct Report: Codable {
        var lag: ReplicationBenchmark.LagResult
        var bytes: [ReplicationBenchmark.BytesResult]
        var rejoin: [ReplicationBenchmark.RejoinResult]
    }

    func run() async throws {
        var logger = Logger(label: "concord.bench.replication")
        logger.logLevel = .error
        let benchmark = ReplicationBenchmark(payloadBytes: payload, logger: logger)

        Progress.say("lag: 3-node sync cluster, \(rate) writes/s for \(seconds) s")
        let lag = try await benchmark.lag(nodes: 3, rate: rate, seconds: seconds)
        var bytes: [ReplicationBenchmark.BytesResult] = []
        for n in try nodeCounts() {
            for strategy in ReplicationBenchmark.Strategy.allCases {
                Progress.say("bytes: \(strategy.rawValue), \(n) nodes, \(writes) writes")
                bytes.append(try await benchmark.bytesPerWrite(strategy: strategy, nodes: n, writes: writes, rate: rate))
            }
        }
        var rejoin: [ReplicationBenchmark.RejoinResult] = []
        for strategy in ReplicationBenchmark.Strategy.allCases {
            Progress.say("rejoin: \(strategy.rawValue), 3 nodes, \(sessions) sessions")
            rejoin.append(try await benchmark.rejoin(strategy: strategy, nodes: 3, sessions: sessions))
        }
        let report = Report(lag: lag, bytes: bytes, rejoin: rejoin)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(render(report))
        }
    }

    func render(_ report: Report) -> String {
        var lagTable = TextTable(["strategy", "nodes", "target/s", "achieved/s", "writes", "delivered", "p50 µs", "p99 µs", "max µs"])
        let lag = report.lag
        lagTable.append([
            lag.strategy, "\(lag.nodes)", "\(lag.targetRate)", format(lag.achievedRate, 0), "\(lag.writes)",
            "\(lag.delivered)", format(lag.p50Micros, 0), format(lag.p99Micros, 0), format(lag.maxMicros, 0),
        ])
        var bytesTable = TextTable(["strategy", "nodes", "writes", "bytes/write", "records/node"])
        for row in report.bytes {
            bytesTable.append([
                row.strategy, "\(row.nodes)", "\(row.writes)", format(row.bytesPerWrite, 0),
                format(row.recordsPerNode, 0),
            ])
        }
        var rejoinTable = TextTable(["strategy", "nodes", "sessions", "copied", "ready s"])
        for row in report.rejoin {
            rejoinTable.append([
                row.strategy, "\(row.nodes)", "\(row.sessions)", "\(row.recordsCopied)", format(row.readySeconds, 3),
            ])
        }
        return [
            "Replication lag (payload \(payload) B)", lagTable.render(), "",
            "Bytes sent per session write (payload \(payload) B, writes through the owner)", bytesTable.render(), "",
            "Rejoin: a node restarted empty until ready", rejoinTable.render(),
        ].joined(separator: "\n")
    }

    func format(_ value: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", value) }
}
