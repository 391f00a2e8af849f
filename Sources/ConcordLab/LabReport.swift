import Foundation

/// The figures of a lab run and the files made from them: results.json, report.md, report.html.
public struct LabReport: Sendable {
    public var configuration: LabConfiguration
    public var results: [LabResult]
    public var skipped: [LabSkipped]
    public var proxyAvailable: Bool
    public var finished = Date()

    public init(configuration: LabConfiguration, results: [LabResult], skipped: [LabSkipped], proxyAvailable: Bool) {
        self.configuration = configuration
        self.results = results
        self.skipped = skipped
        self.proxyAvailable = proxyAvailable
    }

    /// The measured strategies, in run order.
    public var strategies: [String] {
        var seen: [String] = []
        for result in results where !seen.contains(result.strategy) { seen.append(result.strategy) }
        return seen
    }

    /// The strategies none of whose requests got an answer, each with its requests' failure reasons summed: their
    /// other figures (no session lost, no latency) measure nothing, and the lab says so instead of ranking them.
    public var unanswered: [(strategy: String, requests: Int, reasons: [String: Int])] {
        strategies.compactMap { strategy in
            let rows = results.filter { $0.strategy == strategy }
            let requests = rows.reduce(0) { $0 + $1.requests }
            guard requests > 0, rows.allSatisfy({ $0.failedRequests >= $0.requests }) else { return nil }
            return (strategy, requests, rows.reduce(into: [:]) { $0.merge($1.failureReasons, uniquingKeysWith: +) })
        }
    }

    // MARK: Table

    public static let tableHeader = [
        "strategy", "phase", "users", "lost %", "lost", "failed", "resent", "p50 ms", "p99 ms", "p99.9 ms", "max/mean", "cart lost",
        "intranet B/req", "internet B/req", "peak RSS MiB",
    ]

    public var tableRows: [[String]] {
        results.map { r in
            [
                r.strategy, r.phase, "\(r.activeUsers)", Self.fixed(r.lostSessionsPercent, 1), "\(r.lostSessions)",
                "\(r.failedRequests)", "\(r.resentRequests)", Self.fixed(r.p50Ms, 2), Self.fixed(r.p99Ms, 2), Self.fixed(r.p999Ms, 2),
                Self.fixed(r.maxOverMeanLoad, 2), "\(r.lostCartItems)", Self.fixed(r.intranetBytesPerRequest, 0),
                Self.fixed(r.internetBytesPerRequest, 0), Self.fixed(Double(r.peakRssBytes) / 1_048_576, 1),
            ]
        }
    }

    static func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    // MARK: Reading

    /// The rows of one kind of phase, without the strategies in `silent` (``unanswered``: no answer at all).
    private func rows(phase kind: LabPhase.Kind, without silent: Set<String>) -> [LabResult] {
        let names = Set(configuration.phases.filter { $0.kind == kind }.map(\.name))
        return results.filter { names.contains($0.phase) && !silent.contains($0.strategy) }
    }

    private func mechanism(_ strategy: String) -> String { LabStrategy(rawValue: strategy)?.mechanism ?? "" }

    private func list(_ names: [String]) -> String {
        let quoted = names.map { "`\($0)`" }
        guard quoted.count > 1 else { return quoted.first ?? "" }
        return quoted.dropLast().joined(separator: ", ") + " and " + quoted.last!
    }

    /// Rows where at least a tenth of the requests failed: no session could be lost by a user who got no answer,
    /// and fast errors make latency look good, so such rows are named instead of ranked.
    private static func mostlyFailing(_ rows: [LabResult]) -> [LabResult] {
        rows.filter { $0.requests > 0 && $0.failedRequests * 10 >= $0.requests }
    }

    private static func mostlyFailingStrategies(_ rows: [LabResult]) -> Set<String> {
        Set(mostlyFailing(rows).map(\.strategy))
    }

    /// "; `l4-hash` failed 136 of 148 requests (92 %), so its figures here say little" for each such row.
    private func failureClause(_ rows: [LabResult]) -> String {
        Self.mostlyFailing(rows).map { row in
            "; `\(row.strategy)` failed \(row.failedRequests) of \(row.requests) requests "
                + "(\(Self.fixed(Double(row.failedRequests) * 100 / Double(row.requests), 0)) %), so its figures here say little"
        }.joined()
    }

    /// A few plain sentences: which strategy wins on which figure, and why.
    public var findings: [String] {
        var sentences: [String] = []
        let unanswered = self.unanswered
        let silent = Set(unanswered.map(\.strategy))
        func rows(phase kind: LabPhase.Kind) -> [LabResult] { self.rows(phase: kind, without: silent) }
        for broken in unanswered {
            let reasons = broken.reasons.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            sentences.append("`\(broken.strategy)` got no answer to any of its \(broken.requests) requests (\(reasons)): its figures "
                + "measure nothing; its processes' logs are in work/\(broken.strategy)/ of the report directory.")
        }
        for kind in [LabPhase.Kind.restart, .crash, .scaleOut] {
            let phaseRows = rows(phase: kind)
            guard !phaseRows.isEmpty else { continue }
            let failing = Self.mostlyFailingStrategies(phaseRows)
            let kept = phaseRows.filter { $0.lostSessions == 0 && !failing.contains($0.strategy) }.map(\.strategy)
            let worst = phaseRows.max { $0.lostSessionsPercent < $1.lostSessionsPercent }
            var sentence = "On \(kind == .restart ? "a graceful restart" : kind == .crash ? "a crash (SIGKILL)" : "scale-out"), "
            if kept.isEmpty {
                // Every row failed mostly or lost sessions (what `kept` leaves out): say which, roughly.
                sentence += failing.isEmpty ? "every strategy lost sessions" : "no strategy served its users throughout"
            } else {
                sentence += "\(list(kept)) lost no session"
            }
            if let worst, worst.lostSessions > 0 {
                sentence += "; `\(worst.strategy)` lost the most (\(Self.fixed(worst.lostSessionsPercent, 1)) % of active users), "
                if LabStrategy(rawValue: worst.strategy)?.keepsSessionsAcrossNodes == true {
                    // Its mechanism is why it should not have: "because … holds a copy" read as nonsense.
                    sentence += "which its design should prevent (\(mechanism(worst.strategy))): see work/\(worst.strategy)/ in the report directory"
                } else {
                    sentence += "because \(mechanism(worst.strategy))"
                }
            }
            sentences.append(sentence + failureClause(phaseRows) + ".")
        }
        let scaling = rows(phase: .scaleOut) + rows(phase: .scaleIn)
        let modulo = scaling.filter { $0.strategy == LabStrategy.l7HashModulo.rawValue }
        let consistent = scaling.filter { $0.strategy == LabStrategy.l7Hash.rawValue }
        if !modulo.isEmpty, !consistent.isEmpty {
            let share = { (rows: [LabResult]) in
                Double(rows.reduce(0) { $0 + $1.lostSessions }) * 100 / Double(max(1, rows.reduce(0) { $0 + $1.activeUsers }))
            }
            sentences.append(
                "Scaling out and in, `l7-hash-modulo` lost \(Self.fixed(share(modulo), 1)) % of active users against "
                    + "\(Self.fixed(share(consistent), 1)) % for `l7-hash` on the consistent ring: with hash mod n a change in "
                    + "n sends most users to another node, with a ring only the keys of the added or removed node move.")
        }
        let parallel = rows(phase: .parallel)
        if !parallel.isEmpty {
            let losing = parallel.filter { $0.lostCartItems > 0 }.sorted { $0.lostCartItems > $1.lostCartItems }
            let failingInParallel = Self.mostlyFailingStrategies(parallel)
            let clean = parallel.filter { $0.lostCartItems == 0 && $0.lostSessions == 0 && !failingInParallel.contains($0.strategy) }.map(\.strategy)
            // A strategy that lost whole sessions lost their carts too, which the item count does not show.
            let sessionLosers = parallel.filter { $0.lostCartItems == 0 && $0.lostSessions > 0 }
            var sentence = "With parallel cart additions, "
            if !clean.isEmpty {
                sentence += "\(list(clean)) kept every acknowledged item"
            } else {
                sentence += losing.isEmpty ? "no strategy kept every session" : "no strategy kept every item"
            }
            if !sessionLosers.isEmpty {
                sentence += "; \(list(sessionLosers.map(\.strategy))) lost "
                    + (sessionLosers.count == 1 ? "\(sessionLosers[0].lostSessions) sessions" : "sessions")
                    + ", and the carts in them"
            }
            if let first = losing.first {
                sentence += "; `\(first.strategy)` lost \(first.lostCartItems) items"
                if first.strategy == LabStrategy.client.rawValue {
                    sentence += ", because each parallel response carries its own sealed cookie and the last one the browser stores wins"
                }
            }
            sentences.append(sentence + failureClause(parallel) + ".")
        }
        let steadyFailing = Self.mostlyFailingStrategies(rows(phase: .steady))
        let steady = rows(phase: .steady).filter { $0.requests > 0 && !steadyFailing.contains($0.strategy) }
        if let fastest = steady.min(by: { $0.p99Ms < $1.p99Ms }), let slowest = steady.max(by: { $0.p99Ms < $1.p99Ms }),
            fastest.strategy != slowest.strategy
        {
            sentences.append(
                "In steady state `\(fastest.strategy)` has the lowest p99 latency (\(Self.fixed(fastest.p99Ms, 2)) ms) "
                    + "and `\(slowest.strategy)` the highest (\(Self.fixed(slowest.p99Ms, 2)) ms): \(mechanism(slowest.strategy)).")
        }
        if let heaviest = steady.max(by: { $0.intranetBytesPerRequest < $1.intranetBytesPerRequest }), heaviest.intranetBytesPerRequest > 0 {
            let none = steady.filter { $0.intranetBytesPerRequest < 1 }.map(\.strategy)
            sentences.append(
                "Intranet traffic: `\(heaviest.strategy)` sends the most behind the proxy "
                    + "(\(Self.fixed(heaviest.intranetBytesPerRequest, 0)) B per request), because \(mechanism(heaviest.strategy))"
                    + (none.isEmpty ? "." : "; \(list(none)) \(none.count == 1 ? "sends" : "send") none."))
        }
        if let fattest = steady.max(by: { $0.internetBytesPerRequest < $1.internetBytesPerRequest }),
            let leanest = steady.min(by: { $0.internetBytesPerRequest < $1.internetBytesPerRequest }), fattest.strategy != leanest.strategy
        {
            sentences.append(
                "Internet traffic (cookie + response headers): `\(fattest.strategy)` costs \(Self.fixed(fattest.internetBytesPerRequest, 0)) B "
                    + "per request against \(Self.fixed(leanest.internetBytesPerRequest, 0)) B for `\(leanest.strategy)`.")
        }
        if let balanced = steady.min(by: { $0.maxOverMeanLoad < $1.maxOverMeanLoad }),
            let skewed = steady.max(by: { $0.maxOverMeanLoad < $1.maxOverMeanLoad }), skewed.maxOverMeanLoad > balanced.maxOverMeanLoad + 0.05
        {
            sentences.append(
                "Balance: `\(balanced.strategy)` spreads requests most evenly (max/mean \(Self.fixed(balanced.maxOverMeanLoad, 2))), "
                    + "`\(skewed.strategy)` least (\(Self.fixed(skewed.maxOverMeanLoad, 2))), since affinity follows users, not requests.")
        }
        let memory = Dictionary(grouping: results, by: \.strategy).compactMapValues { $0.map(\.peakRssBytes).max() }
        if let big = memory.max(by: { $0.value < $1.value }), let small = memory.min(by: { $0.value < $1.value }), big.key != small.key {
            sentences.append(
                "Memory: the largest node peaked at \(Self.fixed(Double(big.value) / 1_048_576, 1)) MiB with `\(big.key)`, "
                    + "\(Self.fixed(Double(small.value) / 1_048_576, 1)) MiB with `\(small.key)`.")
        }
        for skip in skipped {
            sentences.append("`\(skip.strategy)` was not measured: \(skip.reason).")
        }
        return sentences
    }

    // MARK: Files

    /// Writes results.json, report.md and report.html into `directory`.
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(results).write(to: URL(fileURLWithPath: "\(directory)/results.json"))
        try encoder.encode(skipped).write(to: URL(fileURLWithPath: "\(directory)/skipped.json"))
        try markdown().write(toFile: "\(directory)/report.md", atomically: true, encoding: .utf8)
        try html().write(toFile: "\(directory)/report.html", atomically: true, encoding: .utf8)
    }

    private var setup: String {
        let phases = configuration.phases.map { "\($0.name) \(Self.fixed($0.seconds, 1)) s" }.joined(separator: ", ")
        return "\(configuration.users) users, \(configuration.nodes) nodes, think time \(configuration.thinkTimeMilliseconds) ms, "
            + "\(configuration.parallelRequests) parallel cart additions per user; phases: \(phases)"
            + (configuration.phases.contains { $0.kind == .parallel } ? " (the parallel phase lasts until every burst is answered). " : ". ")
            + (configuration.shutdownDelaySeconds > 0
                ? "App nodes stop with a \(Self.fixed(configuration.shutdownDelaySeconds, 1))-s shutdown delay (`/ready` 503 first). " : "")
            + (configuration.quiesceGraceSeconds.map { "App nodes keep idle connections open \(Self.fixed($0, 1)) s when they shut down (`--quiesce-grace`). " } ?? "")
            + (configuration.proxyMaxRequestsPerBackend.map { "The proxy gives each node at most \($0) requests at once; the rest wait in it (`--max-requests-per-backend`). " } ?? "")
            + (proxyAvailable ? "Users reach the nodes through `concord proxy`." : "`concord proxy` was not available: the lab balanced round-robin itself.")
    }

    public func markdown() -> String {
        var text = "# Concord lab report\n\n\(setup)\n\n## Findings\n\n"
        // A finding may quote several lines (a child's log tail): indented, they stay inside its list item.
        text += findings.map { "- " + $0.replacingOccurrences(of: "\n", with: "\n  ") }.joined(separator: "\n") + "\n\n## Figures\n\n"
        text += "| " + Self.tableHeader.joined(separator: " | ") + " |\n"
        text += "|" + Self.tableHeader.map { _ in "---" }.joined(separator: "|") + "|\n"
        for row in tableRows { text += "| " + row.joined(separator: " | ") + " |\n" }
        text += "\n" + Self.legend + "\n"
        return text
    }

    static let legend = """
        lost % = share of the phase's active users who found their session gone (sent to the login page); \
        failed = transport errors, timeouts and 5xx; resent = requests resent once on a new connection because their \
        reused keep-alive connection closed before any response, as browsers do (a failure only if the resend failed); max/mean = the busiest node's requests over the mean (X-Concord-Node); \
        cart lost = cart items acknowledged but missing later while the session lived; intranet B/req = replication and \
        store bytes (nodes' /metrics) per request; internet B/req = Cookie header sent + response headers received per \
        request; peak RSS = the largest node's VmHWM.
        """

    public func html() -> String {
        let names = strategies
        func series(_ kinds: [LabPhase], _ value: (LabResult) -> Double) -> [(name: String, values: [Double])] {
            kinds.map { phase in
                (phase.name, names.map { name in results.first { $0.strategy == name && $0.phase == phase.name }.map(value) ?? 0 })
            }
        }
        let phases = configuration.phases
        let steadyName = phases.first { $0.kind == .steady }?.name ?? phases.first?.name ?? ""
        let steady = phases.filter { $0.name == steadyName }
        let charts = [
            SVGBarChart(title: "Sessions lost per phase", unit: "% of active users", categories: names,
                        series: series(phases.filter { $0.kind != .warmUp }) { $0.lostSessionsPercent }),
            SVGBarChart(title: "Latency (\(steadyName))", unit: "ms", categories: names,
                        series: series(steady) { $0.p50Ms }.map { ("p50", $0.values) } + series(steady) { $0.p99Ms }.map { ("p99", $0.values) }),
            SVGBarChart(title: "Bytes per request (\(steadyName))", unit: "bytes", categories: names,
                        series: series(steady) { $0.intranetBytesPerRequest }.map { ("intranet", $0.values) }
                            + series(steady) { $0.internetBytesPerRequest }.map { ("internet", $0.values) }),
            SVGBarChart(title: "Balance: busiest node over mean", unit: "max/mean", categories: names,
                        series: series(phases.filter { $0.kind == .steady || $0.kind == .scaleOut }) { $0.maxOverMeanLoad }),
            SVGBarChart(title: "Cart items lost", unit: "items", categories: names,
                        series: series(phases.filter { $0.kind == .parallel }) { Double($0.lostCartItems) }),
        ].map { $0.render() }
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        func code(_ text: String) -> String {
            escape(text).replacingOccurrences(of: "`([^`]*)`", with: "<code>$1</code>", options: .regularExpression)
        }
        var page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Concord lab report</title>
            <style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
            table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
            td:nth-child(-n+2),th{text-align:left}figure{margin:1.5em 0}</style></head><body>
            <h1>Concord lab report</h1>
            <p>\(code(setup))</p>
            <h2>Findings</h2><ul>
            """
        page += findings.map { "<li>\(code($0))</li>" }.joined(separator: "\n") + "</ul>\n<h2>Charts</h2>\n"
        page += charts.map { "<figure>\($0)</figure>" }.joined(separator: "\n")
        page += "\n<h2>Figures</h2>\n<table><tr>" + Self.tableHeader.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for row in tableRows { page += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }
        page += "</table>\n<p>\(escape(Self.legend))</p>\n</body></html>\n"
        return page
    }
}
