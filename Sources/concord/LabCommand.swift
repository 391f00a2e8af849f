import ArgumentParser
import ConcordLab
import ConcordNetworking
import ConcordProxy
import Foundation
import Logging

/// `concord lab`: brings up a real cluster per strategy on this machine, drives virtual users through it while
/// restarting, crashing and scaling nodes, and reports what each strategy lost and spent.
struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Measure every session strategy on a real local cluster (proxy + app nodes + store).",
        discussion: """
            For each strategy the lab starts N `concord app` nodes and `concord proxy` (in the balancing mode the \
            strategy needs) as child processes on loopback, drives virtual users (each with its own cookie jar and \
            source address in 127.0.0.0/8) through the phases warm-up, steady, parallel, restart, crash, scale-out \
            and scale-in, and prints a table. The report (results.json, report.md, report.html) goes to --output.
            Every child process is stopped at the end, on failure and on Ctrl-C. See docs/lab.md.
            Run it from a release build: swift run -c release concord lab
            """
    )

    @Option(help: "Strategies to measure, comma-separated (local, sync, client, l4-hash, l7-hash, l7-hash-modulo, store, sticky-cookie, ring, store+near-cache). Default: all.")
    var strategies: String?

    @Option(help: "Virtual users. Default 2000.")
    var users: Int?

    @Option(help: "App nodes at the start. Default 3.")
    var nodes: Int?

    @Option(help: "Seconds per strategy, at least 7, shared by the default phases in fixed proportions. Default 21.")
    var duration: Double?

    @Option(name: .customLong("think-time-ms"), help: "A user's pause between requests in milliseconds (jittered ±50%). Default 1000.")
    var thinkTime: Int?

    @Option(help: "A YAML scenario file (fields of LabConfiguration: strategies, users, nodes, phases, …); flags override it.")
    var scenario: String?

    @Option(help: "Store URL for store and store+near-cache (sqlite:PATH, redis://HOST:PORT or rediss://…, postgres://…). Default: a fresh SQLite file per strategy.")
    var store: String?

    @Option(help: "Report directory. Default lab-report.")
    var output: String?

    @Option(
        name: .customLong("shutdown-delay"),
        help: "Start every app node with `concord app --shutdown-delay SECONDS` (0...60): on the restart phase's SIGTERM a node answers /ready 503 that long before it stops, so the proxy's health check (1 s × 3) moves users away first. Default 0.")
    var shutdownDelay: Double?

    @Option(
        name: .customLong("quiesce-grace"),
        help: "Start every app node with `concord app --quiesce-grace SECONDS` (0...60): how long a stopping node keeps a connection without a request in progress open for a request already on its way. Default: the app's (0.5); 0 closes them at once.")
    var quiesceGrace: Double?

    @Flag(name: .customLong("proxy-access-log"), help: "Run concord proxy with --access-log: one line per request in DIR/work/<strategy>/proxy.log (status, backend, outcome), to see which requests failed and why.")
    var proxyAccessLog = false

    @Option(name: .customLong("proxy-max-requests-per-backend"), help: "Run concord proxy with --max-requests-per-backend N: each node gets at most N requests at once, the rest wait in the proxy (default: no limit; HTTP strategies only — for l4-hash it would limit connections, which users hold all run).")
    var proxyMaxRequestsPerBackend: Int?

    /// Checked when the command line is parsed, so that a bad flag or scenario prints this command's usage, not
    /// `concord`'s.
    func validate() throws {
        do { _ = try makeConfiguration() } catch let error as ValidationError { throw error } catch {
            throw ValidationError("\(error)")
        }
    }

    func makeConfiguration() throws -> LabConfiguration {
        var configuration = LabConfiguration()
        if let scenario {
            let text: String
            do { text = try String(contentsOfFile: scenario, encoding: .utf8) } catch {
                throw ValidationError("--scenario \(scenario): cannot read it (\((error as NSError).localizedDescription))")
            }
            configuration = try LabConfiguration.load(yaml: text)
        }
        if let strategies { configuration.strategies = try LabStrategy.parseList(strategies) }
        if let users { configuration.users = users }
        if let nodes { configuration.nodes = nodes }
        if let duration {
            guard duration >= 7 else { throw ValidationError("--duration must be at least 7 seconds") }
            // It would silently replace a scenario's own phases with the default seven.
            if let scenario, configuration.phases != LabConfiguration().phases {
                throw ValidationError("--duration sets the default phases; --scenario \(scenario) has phases of its own: set their seconds there, or leave --duration out")
            }
            configuration.phases = LabConfiguration.defaultPhases(totalSeconds: duration)
        }
        if let thinkTime { configuration.thinkTimeMilliseconds = thinkTime }
        if let store { configuration.storeURL = store }
        if let output { configuration.outputDirectory = output }
        if let shutdownDelay { configuration.shutdownDelaySeconds = shutdownDelay }
        if let quiesceGrace { configuration.quiesceGraceSeconds = quiesceGrace }
        if proxyAccessLog { configuration.proxyAccessLog = true }
        if let proxyMaxRequestsPerBackend { configuration.proxyMaxRequestsPerBackend = proxyMaxRequestsPerBackend }
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }

    func run() async throws {
        #if DEBUG
        Progress.say("warning: this is a debug build; figures are meaningful only with `swift run -c release concord lab`")
        #endif
        var configuration = try makeConfiguration()
        configuration.outputDirectory = URL(fileURLWithPath: configuration.outputDirectory).standardizedFileURL.path
        let executable = try Self.currentExecutable()
        OpenFileLimit.raise()  // thousands of users keep thousands of sockets open (children inherit it)
        let signalSources = ChildRegistry.shared.installSignalHandlers { number in
            Progress.say("\ninterrupted (signal \(number)); stopping \(ChildRegistry.shared.running.count) child processes")
        }
        defer {
            for source in signalSources { source.cancel() }
            ChildRegistry.shared.terminateAll()
        }
        var logger = Logger(label: "concord.lab")
        logger.logLevel = .warning
        let phases = configuration.phases.map { "\($0.name) \(String(format: "%.1f", $0.seconds))s" }.joined(separator: ", ")
        Progress.say("concord lab: \(configuration.strategies.map(\.rawValue).joined(separator: ", "))")
        Progress.say("  \(configuration.users) users, \(configuration.nodes) nodes; phases: \(phases)")
        let status = StatusLine()
        let run = LabRun(configuration: configuration, executable: executable, logger: logger) { line in status.update(line) }
        let report = try await run.run()
        var table = TextTable(LabReport.tableHeader)
        for row in report.tableRows { table.append(row) }
        print(table.render())
        print("")
        for finding in report.findings { print("- " + finding) }
        try report.write(to: configuration.outputDirectory)
        print("\nreport: \(configuration.outputDirectory)/report.html, report.md, results.json")
        if report.results.isEmpty { throw ExitCode.failure }
        if !report.unanswered.isEmpty {
            Progress.say("error: no request got an answer with \(report.unanswered.map(\.strategy).joined(separator: ", ")) (above)")
            throw ExitCode.failure
        }
    }

    /// The running `concord` binary, whose `app` and `proxy` subcommands the lab launches.
    static func currentExecutable() throws -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ValidationError("cannot find the concord executable (tried \(path))")
        }
        return path
    }
}
