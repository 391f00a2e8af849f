import Foundation
import Testing

@testable import ConcordLab

@Suite(.timeLimit(.minutes(3))) struct LabReportTests {
    private func tally(requests: Int, lost: Int, active: Int, perNode: [String: Int], cartLost: Int = 0, failed: Int = 0) -> PhaseTally {
        var tally = PhaseTally()
        tally.failedRequests = failed
        tally.activeUsers = Set(0..<active)
        tally.lostUsers = Set(0..<lost)
        tally.requests = requests
        tally.requestsPerNode = perNode
        tally.lostCartItems = cartLost
        tally.internetBytes = requests * 300
        tally.intranetBytes = requests * 100
        for value: UInt64 in [1_000, 2_000, 3_000, 50_000] { _ = tally.latency.record(value) }
        return tally
    }

    @Test func resultRowComputesTheFigures() {
        let row = LabResult(
            strategy: "store", phase: "crash", balancing: "test",
            tally: tally(requests: 400, lost: 5, active: 20, perNode: ["node-1": 300, "node-2": 100]))
        #expect(row.lostSessionsPercent == 25)
        #expect(row.maxOverMeanLoad == 1.5)
        #expect(row.internetBytesPerRequest == 300)
        #expect(row.intranetBytesPerRequest == 100)
        #expect(row.p50Ms >= 1.9 && row.p50Ms <= 2.1)
        #expect(row.p99Ms >= 49)
    }

    @Test func resultsJSONKeepsTheFieldNamesOtherToolsRead() throws {
        let report = LabReport(
            configuration: LabConfiguration(strategies: [.store], phases: [LabPhase(kind: .crash, seconds: 1)]),
            results: [LabResult(strategy: "store", phase: "crash", balancing: "test", tally: tally(requests: 10, lost: 0, active: 5, perNode: ["n": 10]))],
            skipped: [LabSkipped(strategy: "ring", reason: "not built")], proxyAvailable: false)
        let directory = NSTemporaryDirectory() + "concord-lab-report-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try report.write(to: directory)
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/results.json"))
        let rows = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        let keys = Set(rows[0].keys)
        for name in [
            "strategy", "phase", "activeUsers", "lostSessions", "lostSessionsPercent", "failedRequests", "p50Ms", "p99Ms",
            "maxOverMeanLoad", "lostCartItems", "intranetBytesPerRequest", "internetBytesPerRequest", "peakRssBytes",
        ] {
            #expect(keys.contains(name), "results.json lacks \(name)")
        }
        let html = try String(contentsOfFile: directory + "/report.html", encoding: .utf8)
        #expect(html.contains("<svg"))
        #expect(html.contains("not built"))
        let markdown = try String(contentsOfFile: directory + "/report.md", encoding: .utf8)
        #expect(markdown.contains("| store | crash |"))
    }

    @Test func findingsCompareModuloWithConsistentHashingOnScaling() {
        let phases = [LabPhase(kind: .scaleOut, seconds: 1), LabPhase(kind: .scaleIn, seconds: 1)]
        let results = ["scale-out", "scale-in"].flatMap { phase in
            [
                LabResult(strategy: "l7-hash", phase: phase, balancing: "", tally: tally(requests: 100, lost: 25, active: 100, perNode: ["a": 100])),
                LabResult(strategy: "l7-hash-modulo", phase: phase, balancing: "", tally: tally(requests: 100, lost: 75, active: 100, perNode: ["a": 100])),
            ]
        }
        let report = LabReport(
            configuration: LabConfiguration(strategies: [.l7Hash, .l7HashModulo], phases: phases), results: results, skipped: [],
            proxyAvailable: true)
        #expect(report.findings.contains { $0.contains("`l7-hash-modulo` lost 75.0 % of active users against 25.0 % for `l7-hash`") })
    }

    @Test func findingsNameTheWinnersAndTheSkipped() {
        let phases = [LabPhase(kind: .steady, seconds: 1), LabPhase(kind: .crash, seconds: 1)]
        let results = [
            LabResult(strategy: "store", phase: "steady", balancing: "", tally: tally(requests: 100, lost: 0, active: 10, perNode: ["a": 50, "b": 50])),
            LabResult(strategy: "store", phase: "crash", balancing: "", tally: tally(requests: 100, lost: 0, active: 10, perNode: ["a": 50, "b": 50])),
            LabResult(strategy: "local", phase: "steady", balancing: "", tally: tally(requests: 100, lost: 9, active: 10, perNode: ["a": 90, "b": 10])),
            LabResult(strategy: "local", phase: "crash", balancing: "", tally: tally(requests: 100, lost: 9, active: 10, perNode: ["a": 50, "b": 50])),
        ]
        let report = LabReport(
            configuration: LabConfiguration(strategies: [.store, .local], phases: phases), results: results,
            skipped: [LabSkipped(strategy: "ring", reason: "needs the proxy")], proxyAvailable: false)
        let text = report.findings.joined(separator: "\n")
        #expect(text.contains("`store` lost no session"))
        #expect(text.contains("`local` lost the most (90.0 %"))
        #expect(text.contains("`ring` was not measured: needs the proxy"))
    }

    /// A strategy whose design keeps sessions (a copy elsewhere) that still lost the most is not "explained" by that
    /// design ("lost the most … because the next node on the ring holds a copy").
    @Test func aLossTheDesignShouldPreventIsNotExplainedByIt() {
        let phases = [LabPhase(kind: .crash, seconds: 1)]
        let text = LabReport(
            configuration: LabConfiguration(strategies: [.ring, .store], phases: phases),
            results: [LabResult(strategy: "ring", phase: "crash", balancing: "", tally: tally(requests: 100, lost: 2, active: 10, perNode: ["a": 100])),
                      LabResult(strategy: "store", phase: "crash", balancing: "", tally: tally(requests: 100, lost: 0, active: 10, perNode: ["a": 100]))],
            skipped: [], proxyAvailable: true).findings.joined(separator: "\n")
        #expect(text.contains("`ring` lost the most (20.0 % of active users), which its design should prevent"), "\(text)")
        #expect(!text.contains("because the proxy hashes the session id"), "\(text)")
    }

    /// A finding that quotes several lines stays one list item in report.md (the lines after the first broke the list).
    @Test func aMultiLineFindingStaysOneListItem() {
        let report = LabReport(
            configuration: LabConfiguration(strategies: [.ring], phases: [LabPhase(kind: .steady, seconds: 1)]), results: [],
            skipped: [LabSkipped(strategy: "ring", reason: "node-1 exited; its log ends with:\nError: boom\n\nmore")], proxyAvailable: true)
        #expect(report.markdown().contains("- `ring` was not measured: node-1 exited; its log ends with:\n  Error: boom\n  \n  more."),
                "\(report.markdown())")
    }

    /// A strategy most of whose requests failed in a phase (a per-backend limit that turned users away, one node
    /// down) is named with its failures, not as one that "lost no session" or had the lowest p99 thanks to fast 503s.
    @Test func mostlyFailingRowsAreNamedNotRanked() {
        let phases = [LabPhase(kind: .steady, seconds: 1), LabPhase(kind: .crash, seconds: 1), LabPhase(kind: .parallel, seconds: 1)]
        var results: [LabResult] = []
        for phase in ["steady", "crash", "parallel"] {
            results.append(LabResult(strategy: "store", phase: phase, balancing: "", tally: tally(requests: 100, lost: 1, active: 10, perNode: ["a": 100])))
            results.append(LabResult(strategy: "l4-hash", phase: phase, balancing: "",
                                     tally: tally(requests: 148, lost: 0, active: 10, perNode: ["a": 148], failed: 136)))
        }
        let text = LabReport(
            configuration: LabConfiguration(strategies: [.store, .l4Hash], phases: phases), results: results,
            skipped: [], proxyAvailable: true).findings.joined(separator: "\n")
        #expect(!text.contains("`l4-hash` lost no session") && !text.contains("`l4-hash` kept every"), "\(text)")
        #expect(text.contains("`l4-hash` failed 136 of 148 requests (92 %), so its figures here say little"), "\(text)")
        #expect(!text.contains("In steady state `l4-hash`"), "\(text)")
    }

    /// A strategy that lost whole sessions in the parallel phase lost no *item* it still had, but it did not keep
    /// the carts: the finding used to say "no strategy kept every item" while the table showed 0 items lost.
    @Test func theParallelFindingNamesSessionsLostAsWellAsItems() {
        let phases = [LabPhase(kind: .parallel, seconds: 1)]
        let onlySessions = LabReport(
            configuration: LabConfiguration(strategies: [.local], phases: phases),
            results: [LabResult(strategy: "local", phase: "parallel", balancing: "", tally: tally(requests: 100, lost: 4, active: 10, perNode: ["a": 100]))],
            skipped: [], proxyAvailable: true).findings.joined(separator: "\n")
        #expect(onlySessions.contains("With parallel cart additions, no strategy kept every session; `local` lost 4 sessions, and the carts in them."),
                "\(onlySessions)")
        let mixed = LabReport(
            configuration: LabConfiguration(strategies: [.store, .local, .client], phases: phases),
            results: [
                LabResult(strategy: "store", phase: "parallel", balancing: "", tally: tally(requests: 100, lost: 0, active: 10, perNode: ["a": 100])),
                LabResult(strategy: "local", phase: "parallel", balancing: "", tally: tally(requests: 100, lost: 4, active: 10, perNode: ["a": 100])),
                LabResult(strategy: "client", phase: "parallel", balancing: "", tally: tally(requests: 100, lost: 0, active: 10, perNode: ["a": 100], cartLost: 7)),
            ],
            skipped: [], proxyAvailable: true).findings.joined(separator: "\n")
        #expect(mixed.contains("`store` kept every acknowledged item; `local` lost 4 sessions, and the carts in them; `client` lost 7 items"), "\(mixed)")
    }

    /// A strategy none of whose requests got an answer (a proxy that reset every connection) is named as such,
    /// not listed as one that "lost no session"; `concord lab` then exits non-zero.
    @Test func aStrategyWithoutAnyAnswerIsNamedAndNotRanked() {
        let phases = [LabPhase(kind: .steady, seconds: 1), LabPhase(kind: .crash, seconds: 1)]
        var dead = tally(requests: 23, lost: 0, active: 20, perNode: [:])
        dead.failedRequests = 23
        dead.failureReasons = ["connection error": 23]
        var halfDead = dead
        halfDead.failedRequests = 22
        let results = ["steady", "crash"].flatMap { phase in
            [
                LabResult(strategy: "l7-hash", phase: phase, balancing: "", tally: dead),
                LabResult(strategy: "store", phase: phase, balancing: "", tally: phase == "crash" ? halfDead : dead),
            ]
        }
        let report = LabReport(
            configuration: LabConfiguration(strategies: [.l7Hash, .store], phases: phases), results: results, skipped: [],
            proxyAvailable: true)
        #expect(report.unanswered.map(\.strategy) == ["l7-hash"])
        let text = report.findings.joined(separator: "\n")
        #expect(text.contains("`l7-hash` got no answer to any of its 46 requests (connection error ×46)"), "\(text)")
        #expect(!text.contains("`l7-hash` and"), "\(text)")
        // `store` got one answer in 23: named with its failures, not as one that "lost no session".
        #expect(text.contains("On a crash (SIGKILL), no strategy served its users throughout; `store` failed 22 of 23 requests (96 %)"), "\(text)")
    }

    @Test func theSetupNamesTheShutdownDelay() {
        let phases = [LabPhase(kind: .restart, seconds: 1)]
        let plain = LabReport(configuration: LabConfiguration(phases: phases), results: [], skipped: [], proxyAvailable: true)
        let delayed = LabReport(
            configuration: LabConfiguration(phases: phases, shutdownDelaySeconds: 4), results: [], skipped: [], proxyAvailable: true)
        #expect(!plain.markdown().contains("shutdown delay"))
        #expect(!plain.markdown().contains("parallel phase lasts"), "no parallel phase in this scenario")
        let withBursts = LabReport(configuration: LabConfiguration(), results: [], skipped: [], proxyAvailable: true)
        #expect(withBursts.markdown().contains("(the parallel phase lasts until every burst is answered)"))
        #expect(delayed.markdown().contains("App nodes stop with a 4.0-s shutdown delay"))
        #expect(!plain.markdown().contains("quiesce-grace"))
        let graced = LabReport(
            configuration: LabConfiguration(phases: phases, quiesceGraceSeconds: 0), results: [], skipped: [], proxyAvailable: true)
        #expect(graced.markdown().contains("keep idle connections open 0.0 s"))
    }

    @Test func intranetCounterIsSummedFromPrometheusText() {
        let text = """
            # TYPE concord_app_intranet_bytes_total counter
            concord_app_intranet_bytes_total{kind="store"} 1200
            concord_app_intranet_bytes_total{kind="replication"} 34
            concord_other_total 99
            """
        #expect(LabCluster.intranetBytes(inMetrics: text) == 1234)
    }
}
