/// Why the app cannot start. A struct over a private enum so new cases do not break users.
public struct AppError: Error, Sendable, CustomStringConvertible {
    private enum Base: Sendable {
        case invalidConfiguration(String)
        case cannotListen(addresses: String, reason: String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// A flag or configuration value is wrong or names something this build lacks.
    public static func invalidConfiguration(_ reason: String) -> Self { Self(.invalidConfiguration(reason)) }

    /// A listening address is taken (or not allowed); `addresses` names the ones the app listens on.
    public static func cannotListen(addresses: String, reason: String) -> Self {
        Self(.cannotListen(addresses: addresses, reason: reason))
    }

    public var description: String {
        switch base {
        case .invalidConfiguration(let reason): "invalid app configuration: \(reason)"
        case .cannotListen(let addresses, let reason): "cannot listen on \(addresses): \(reason)"
        }
    }
}
