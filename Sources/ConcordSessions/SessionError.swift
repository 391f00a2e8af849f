/// Why committing or configuring a session failed (store errors are ``SessionStoreError``).
/// A struct over a private enum so new cases do not break users.
public struct SessionError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case cookieTooLarge(size: Int, limit: Int)
        case tooManyConflicts(attempts: Int)
        case encodingFailed(String)
        case sealingFailed(String)
        case invalidConfiguration(String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The sealed session would make a cookie bigger than browsers keep. Nothing was sent; store less in the
    /// session, turn on compression, or use a server-side strategy.
    public static func cookieTooLarge(size: Int, limit: Int) -> Self { Self(.cookieTooLarge(size: size, limit: limit)) }
    /// Concurrent requests kept changing the session; the change was re-applied this many times and given up.
    public static func tooManyConflicts(attempts: Int) -> Self { Self(.tooManyConflicts(attempts: attempts)) }
    /// The app's session value could not be encoded.
    public static func encodingFailed(_ reason: String) -> Self { Self(.encodingFailed(reason)) }
    /// The AEAD refused to seal (should not happen with a valid key).
    public static func sealingFailed(_ reason: String) -> Self { Self(.sealingFailed(reason)) }
    /// The session or cookie configuration is inconsistent.
    public static func invalidConfiguration(_ reason: String) -> Self { Self(.invalidConfiguration(reason)) }

    public var isCookieTooLarge: Bool { if case .cookieTooLarge = base { true } else { false } }
    public var isTooManyConflicts: Bool { if case .tooManyConflicts = base { true } else { false } }
    public var isInvalidConfiguration: Bool { if case .invalidConfiguration = base { true } else { false } }

    public var description: String {
        switch base {
        case .cookieTooLarge(let size, let limit):
            "sealed session cookie is \(size) bytes, over the \(limit)-byte limit browsers keep; store less in the session, enable compression, or use a server-side strategy"
        case .tooManyConflicts(let attempts):
            "session changed concurrently; gave up after \(attempts) attempts to re-apply the change"
        case .encodingFailed(let reason): "session value could not be encoded: \(reason)"
        case .sealingFailed(let reason): "session could not be sealed: \(reason)"
        case .invalidConfiguration(let reason): "invalid session configuration: \(reason)"
        }
    }
}
