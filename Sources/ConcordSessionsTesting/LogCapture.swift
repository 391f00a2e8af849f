import Logging
import Synchronization

/// A swift-log handler that keeps every line (level, message, `error` metadata) for assertions:
/// `Logger(label: "test") { _ in capture }`.
public final class LogCapture: LogHandler, Sendable {
    public struct Line: Sendable, CustomStringConvertible {
        public var level: Logger.Level
        public var message: String
        public var error: String?
        public var description: String { "\(level): \(message)" }
    }

    private let storage = Mutex<[Line]>([])

    public init() {}

    public var lines: [Line] { storage.withLock { $0 } }
    public var messages: [String] { lines.map(\.message) }

    public func log(event: LogEvent) {
        let line = Line(level: event.level, message: event.message.description, error: event.metadata?["error"]?.description)
        storage.withLock { $0.append(line) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    public var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    public var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
}
