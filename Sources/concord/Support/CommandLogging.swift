import ArgumentParser
import Logging

/// How `concord app` and `concord proxy` set up swift-log: every logger of the process writes to one standard
/// stream, from `--log-level` up. Call once, before the first logger is made.
enum CommandLogging {
    enum Stream { case standardOutput, standardError }

    /// The level a `--log-level` value names; anything else is a usage error listing the levels.
    static func level(parsing value: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: value) else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(value)'")
        }
        return level
    }

    static func bootstrap(level: Logger.Level, to stream: Stream) {
        LoggingSystem.bootstrap { label in
            var handler = stream == .standardOutput
                ? StreamLogHandler.standardOutput(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
