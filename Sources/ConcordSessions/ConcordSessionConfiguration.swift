/// Everything about sessions an app configures: the strategy, the timeouts, the cookie.
///
/// ```swift
/// let configuration = ConcordSessionConfiguration(strategy: .client(keyRing))
/// let configuration = ConcordSessionConfiguration(strategy: .store(redisStore), idleTimeout: .seconds(900))
/// ```
public struct ConcordSessionConfiguration: Sendable {
    /// Where sessions live.
    public var strategy: SessionStrategy
    /// A session unused this long is over (OWASP: 15–30 min for most apps). Default 30 minutes.
    public var idleTimeout: Duration
    /// A session is over this long after it was created or regenerated, however active. Default 12 hours.
    public var absoluteTimeout: Duration
    /// An unchanged session's last-access time (and the store TTL) is refreshed at most this often, so most
    /// requests write nothing; the idle timeout is therefore exact to within this. Default 60 seconds, or half
    /// the idle timeout when that is shorter than 2 minutes.
    public var touchInterval: Duration
    /// How many times a change is applied before giving up when concurrent requests keep changing the same
    /// session (the first write plus re-applications after conflicts). Default 8.
    public var maximumUpdateAttempts: Int
    /// After a conflict, a writer waits before re-applying its change: half of `conflictBackoff × 2^(n−1)` plus a
    /// random part of the other half after the n-th conflict (at most 64 × it). Without a pause, writers that
    /// conflicted once met again at once: 20 parallel cart additions on one session against Redis had 1–2 give
    /// up (409) in most rounds (2026-12-02). Default 1 ms; zero turns it off.
    public var conflictBackoff: Duration
    /// The session cookie.
    public var cookie: SessionCookieConfiguration
    /// Decoded sessions (record and value) kept per session id, reused while the stored bytes are unchanged, so a
    /// request that only reads its session skips parsing and JSON decoding; 0 turns it off. Default 10,000.
    public var decodedValueCacheSize: Int

    /// - Parameters:
    ///   - strategy: where sessions live.
    ///   - idleTimeout: default 30 minutes.
    ///   - absoluteTimeout: default 12 hours.
    ///   - touchInterval: default 60 seconds, or half of `idleTimeout` when that is shorter than 2 minutes (a
    ///     short idle timeout in a test then needs no touch interval of its own).
    ///   - maximumUpdateAttempts: default 8.
    ///   - conflictBackoff: default 1 ms.
    ///   - cookie: default ``SessionCookieConfiguration/init(name:hostPrefix:httpOnly:sameSite:secure:path:domain:persistent:)``.
    ///   - decodedValueCacheSize: default 10,000 sessions.
    public init(
        strategy: SessionStrategy,
        idleTimeout: Duration = .seconds(30 * 60),
        absoluteTimeout: Duration = .seconds(12 * 60 * 60),
        touchInterval: Duration? = nil,
        maximumUpdateAttempts: Int = 8,
        conflictBackoff: Duration = .milliseconds(1),
        cookie: SessionCookieConfiguration = .init(),
        decodedValueCacheSize: Int = 10_000
    ) {
        self.strategy = strategy
        self.idleTimeout = idleTimeout
        self.absoluteTimeout = absoluteTimeout
        self.touchInterval = touchInterval ?? min(.seconds(60), idleTimeout / 2)
        self.maximumUpdateAttempts = maximumUpdateAttempts
        self.conflictBackoff = conflictBackoff
        self.cookie = cookie
        self.decodedValueCacheSize = decodedValueCacheSize
    }

    /// Throws ``SessionError`` `.invalidConfiguration` for inconsistent settings.
    public func validate() throws {
        try cookie.validate()
        guard idleTimeout > .zero, absoluteTimeout > .zero else {
            throw SessionError.invalidConfiguration("idleTimeout and absoluteTimeout must be positive")
        }
        guard touchInterval >= .zero, touchInterval < idleTimeout else {
            throw SessionError.invalidConfiguration("touchInterval must be shorter than idleTimeout")
        }
        guard decodedValueCacheSize >= 0 else {
            throw SessionError.invalidConfiguration("decodedValueCacheSize must not be negative")
        }
        guard conflictBackoff >= .zero else {
            throw SessionError.invalidConfiguration("conflictBackoff must not be negative")
        }
        guard maximumUpdateAttempts >= 1 else {
            throw SessionError.invalidConfiguration("maximumUpdateAttempts must be at least 1")
        }
    }
}
