import Foundation
import Logging
import NIOCore

/// A whole lab run: for each strategy, bring the cluster up, drive the users through the phases while
/// injecting the events, stop everything, and keep the figures.
public struct LabRun: Sendable {
    public let configuration: LabConfiguration
    /// The `concord` executable whose `app` and `proxy` subcommands are launched.
    public let executable: String
    public let logger: Logger
    /// Called about once a second with a one-line status, and with `nil` when a strategy ends.
    public let progress: @Sendable (String?) -> Void

    public init(configuration: LabConfiguration, executable: String, logger: Logger, progress: @escaping @Sendable (String?) -> Void) {
        self.configuration = configuration
        self.executable = executable
        self.logger = logger
        self.progress = progress
    }

    /// Runs every strategy in turn. A strategy that the build cannot run, or whose cluster fails, is reported as
    /// skipped with the reason; the others still run.
    public func run() async throws -> LabReport {
        try configuration.validate()
        let capabilities = try await LabCapabilities.probe(executable: executable, workDirectory: workRoot)
        var results: [LabResult] = []
        var skipped: [LabSkipped] = []
        for strategy in configuration.strategies {
            if let reason = capabilities.reasonToSkip(strategy) {
                logger.warning("skipping \(strategy.rawValue): \(reason)")
                skipped.append(LabSkipped(strategy: strategy.rawValue, reason: reason))
                continue
            }
            try Task.checkCancellation()
            do {
                results += try await run(strategy, proxyAvailable: capabilities.hasProxy)
            } catch let error as CancellationError {
                throw error
            } catch {
                logger.error("\(strategy.rawValue) failed: \(error)")
                skipped.append(LabSkipped(strategy: strategy.rawValue, reason: "the run failed: \(error)"))
            }
            if strategy != configuration.strategies.last {
                // The strategies measured so far, in case the run is interrupted (Ctrl-C ends the process): a long
                // run's finished strategies are not lost. The complete report replaces these files at the end.
                let partial = LabReport(configuration: configuration, results: results, skipped: skipped, proxyAvailable: capabilities.hasProxy)
                do { try partial.write(to: configuration.outputDirectory) } catch {
                    logger.warning("could not write the report so far: \(error)")
                }
            }
        }
        return LabReport(configuration: configuration, results: results, skipped: skipped, proxyAvailable: capabilities.hasProxy)
    }

    private var workRoot: String { "\(configuration.outputDirectory)/work" }

    /// The file that marks a directory as a lab run's own (its children's logs and store): only such a directory is
    /// emptied for the next run — `--output ~` must not delete a `~/work/store` the lab never made.
    static let workMarker = ".concord-lab-work"

    static func clearWorkDirectory(_ directory: String) throws {
        let manager = FileManager.default
        if manager.fileExists(atPath: directory) {
            guard manager.fileExists(atPath: "\(directory)/\(workMarker)") else {
                throw LabError.invalidArgument(
                    "\(directory) exists and was not made by concord lab; it is left alone: choose another --output")
            }
            try manager.removeItem(atPath: directory)
        }
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        manager.createFile(atPath: "\(directory)/\(workMarker)", contents: Data())
    }

    func run(_ strategy: LabStrategy, proxyAvailable: Bool) async throws -> [LabResult] {
        let directory = "\(workRoot)/\(strategy.rawValue)"
        try Self.clearWorkDirectory(directory)
        let cluster = LabCluster(
            strategy: strategy, configuration: configuration, executable: executable, workDirectory: directory,
            proxyAvailable: proxyAvailable, logger: logger)
        progress("[\(strategy.rawValue)] starting \(configuration.nodes) nodes\(proxyAvailable ? " and the proxy" : "")…")
        do {
            try await cluster.start()
            let recorder = LabRecorder(phases: configuration.phases)
            try await drive(cluster: cluster, recorder: recorder, strategy: strategy)
            await cluster.stopAll()
            progress(nil)
            return zip(configuration.phases, recorder.snapshot()).map { phase, tally in
                LabResult(strategy: strategy.rawValue, phase: phase.name, balancing: cluster.balancingDescription, tally: tally)
            }
        } catch {
            await cluster.stopAll()
            progress(nil)
            throw error
        }
    }

    private func drive(cluster: LabCluster, recorder: LabRecorder, strategy: LabStrategy) async throws {
        let warmUp = configuration.phases.first?.seconds ?? 1
        let users = configuration.users
        let environment: @Sendable (Int) -> VirtualUser.Environment = { index in
            VirtualUser.Environment(
                recorder: recorder, entry: cluster.entry,
                thinkTime: .milliseconds(configuration.thinkTimeMilliseconds),
                requestTimeout: .milliseconds(Int64(configuration.requestTimeoutMilliseconds)),
                parallelRequests: configuration.parallelRequests,
                startDelay: .seconds(warmUp * 0.8 * Double(index) / Double(users)))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { users in
                    for index in 0..<configuration.users {
                        users.addTask {
                            var user = VirtualUser(index: index, environment: environment(index))
                            await user.run()
                        }
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    await cluster.scrape(into: recorder)
                    try await Task.sleep(for: .seconds(1))
                }
            }
            group.addTask {
                var previous = 0
                let started = ContinuousClock.now
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    let counts = recorder.currentCounts()
                    // Counts start again at each phase.
                    let rate = counts.requests >= previous ? counts.requests - previous : counts.requests
                    previous = counts.requests
                    let elapsed = Int(started.duration(to: .now).components.seconds)
                    progress(
                        "[\(strategy.rawValue)] \(recorder.phase.name) t=\(elapsed)s  \(counts.requests) req (\(rate)/s)  "
                            + "failed \(counts.failed)  lost \(counts.lost)/\(counts.active) users  nodes \(await cluster.nodeIDs.count)")
                }
            }
            for (index, phase) in configuration.phases.enumerated() {
                recorder.begin(phase: index)
                let started = ContinuousClock.now
                let end = started.advanced(by: .seconds(phase.seconds))
                if phase.kind != .warmUp, phase.kind != .steady, phase.kind != .parallel {
                    // The event lands a quarter into the phase, so the phase sees before, during and after.
                    try await Task.sleep(until: started.advanced(by: .seconds(phase.seconds / 4)))
                    try await cluster.inject(phase)
                }
                try await Task.sleep(until: end)
                if phase.kind == .parallel {
                    // Until every burst is answered (each request is bounded by the timeout, its connect too).
                    let bound = Duration.milliseconds(2 * configuration.requestTimeoutMilliseconds + 1000)
                    if !(await recorder.waitUntilBurstsEnd(timeout: bound)) {
                        logger.warning("\(recorder.burstRequestsInFlight) parallel additions still unanswered after \(bound); going on")
                    }
                }
                await cluster.scrape(into: recorder)
                if phase.kind == .warmUp {
                    let counts = recorder.currentCounts()
                    if counts.requests > 0 && counts.failed == counts.requests {
                        // Nothing answered through a whole warm-up (a store that never answers, say): the other
                        // phases could only repeat it, so the strategy ends here and the report says why (the
                        // whole run took its full length before 2026-12-03).
                        progress(nil)
                        progress("[\(strategy.rawValue)] no request of the warm-up got an answer (\(counts.requests) failed); "
                            + "the other phases are skipped")
                        progress(nil)
                        break
                    }
                }
            }
            group.cancelAll()
        }
    }
}
