/// Why a lab run could not go on. A struct over a private enum so new cases do not break users.
public struct LabError: Error, Sendable, CustomStringConvertible {
    private enum Base: Sendable {
        case invalidArgument(String)
        case childFailed(String)
        case notReady(String)
        case http(String)
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

    public var description: String {
        switch base {
        case .invalidArgument(let reason): "invalid lab setting: \(reason)"
        case .childFailed(let reason): "lab child process failed: \(reason)"
        case .notReady(let reason): "lab child process not ready: \(reason)"
        case .http(let reason): "HTTP exchange failed: \(reason)"
        }
    }
}
