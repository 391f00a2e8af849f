/// Why a lab run could not go on. A struct over a private enum so new cases do not break users.
public struct LabError: Error, Sendable, CustomStringConvertible {
    private enum Base: Sendable {
        case invalidArgument(String)
        case childFailed(String)
        case notReady(String)
        case http(String)
        case closedBeforeResponse(String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// A flag, a scenario file or a configuration value is wrong.
    public static func invalidArgument(_ reason: String) -> Self { Self(.invalidArgument(reason)) }
    /// A child process could not be started or exited unexpectedly.
    public static func childFailed(_ reason: String) -> Self { Self(.childFailed(reason)) }
    /// A child process did not report ready in time.
    public static func notReady(_ reason: String) -> Self { Self(.notReady(reason)) }
    /// An HTTP exchange failed (connection refused or closed, timeout, malformed response).
    public static func http(_ reason: String) -> Self { Self(.http(reason)) }
    /// The connection closed or was reset before any response to the request arrived (the request may or may not
    /// have reached the server).
    public static func closedBeforeResponse(_ reason: String) -> Self { Self(.closedBeforeResponse(reason)) }

    /// What is wrong, for an ``invalidArgument(_:)`` (to be told in another context, e.g. a scenario file's).
    var invalidArgumentReason: String? {
        if case .invalidArgument(let reason) = base { reason } else { nil }
    }

    /// Whether the exchange failed before any response arrived (a browser resends such a request once when it
    /// went on a reused keep-alive connection).
    public var isClosedBeforeResponse: Bool {
        if case .closedBeforeResponse = base { true } else { false }
    }

    public var description: String {
        switch base {
        case .invalidArgument(let reason): "invalid lab setting: \(reason)"
        case .childFailed(let reason): "lab child process failed: \(reason)"
        case .notReady(let reason): "lab child process not ready: \(reason)"
        case .http(let reason): "HTTP exchange failed: \(reason)"
        case .closedBeforeResponse(let reason): "HTTP exchange failed before any response: \(reason)"
        }
    }
}
