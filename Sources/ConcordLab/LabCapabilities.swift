import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What this build of `concord` can run: the app's strategies (`concord app --list-strategies`) and whether
/// `concord proxy` exists. The lab skips, with the reason, whatever is missing — it never invents figures.
public struct LabCapabilities: Sendable {
    public var appStrategies: Set<String>
    public var hasApp: Bool
    public var hasProxy: Bool

    public static func probe(executable: String, workDirectory: String) async throws -> LabCapabilities {
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        let (appStatus, appOutput) = try await runToEnd(executable, ["app", "--list-strategies"], log: "\(workDirectory)/probe-app.log")
        // An unknown subcommand followed by --help prints the root help and exits 0, so look for a proxy flag.
        let (proxyStatus, proxyHelp) = try await runToEnd(executable, ["proxy", "--help"], log: "\(workDirectory)/probe-proxy.log")
        let strategies = appStatus == 0
            ? Set(appOutput.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            : []
        return LabCapabilities(appStrategies: strategies, hasApp: appStatus == 0, hasProxy: proxyStatus == 0 && proxyHelp.contains("--listen"))
    }

    /// Why `strategy` cannot run with this build, or `nil` when it can.
    public func reasonToSkip(_ strategy: LabStrategy) -> String? {
        guard hasApp else { return "`concord app` is not in this build" }
        guard appStrategies.contains(strategy.appStrategy) else {
            return "`concord app` has no `\(strategy.appStrategy)` strategy in this build"
        }
        if strategy.balancing != .roundRobin, !hasProxy {
            return "needs `concord proxy` (\(strategy.balancing.rawValue)), which is not in this build"
        }
        return nil
    }

    /// Runs a short command to its end (bounded to 20 s) and returns its exit status and output.
    private static func runToEnd(_ executable: String, _ arguments: [String], log: String) async throws -> (Int32, String) {
        try? FileManager.default.removeItem(atPath: log)
        let child = try LabChild.spawn(name: arguments.joined(separator: " "), executable: executable, arguments: arguments, logPath: log)
        // On timeout the child is killed at once (no grace: it is only a probe).
        guard let status = await child.waitForExit(within: .seconds(20), stopGrace: .zero) else {
            throw LabError.childFailed("`\(executable) \(arguments.joined(separator: " "))` did not finish within 20 s")
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        // A wait status: exited normally with code 0 is the whole word 0.
        return (status, output)
    }
}
