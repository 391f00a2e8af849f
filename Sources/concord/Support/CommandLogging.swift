import Logging

/// How `concord app` and `concord proxy` set up swift-log: every logger of the process writes to one standard
/// stream, from `--log-level` up. Call once, before the first logger is made.
enum CommandLogging {
    enum Stream { case standardOutput, standardError }

    static func bootstrap(level: Logger.Level, to stream: Stream) {
        LoggingSystem.bootstrap { label in
            var handler = stream == .standardOutput
                ? StreamLogHandler.standardOutput(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
