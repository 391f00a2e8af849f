/// Why a ``SessionStore`` operation failed. A struct over a private enum so new cases do not break users.
public struct SessionStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case unavailable(String, notApplied: Bool)
        case conflict(expected: UInt64, actual: UInt64?)
        case tooLarge(size: Int, limit: Int)
        case corrupt(String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The backend could not be reached or did not answer in time. Maps to HTTP 503 at the edge. `notApplied`: the
    /// store knows the operation had no effect — it never left the app (no connection could be had) — so it may be
    /// tried again even when it writes; false when it may have been applied (a timeout, a connection lost after
    /// sending) or the store cannot tell.
    public static func unavailable(_ reason: String, notApplied: Bool = false) -> Self {
        Self(.unavailable(reason, notApplied: notApplied))
    }
    /// A versioned write found another version stored (`actual` is `nil` when the record is gone).
    public static func conflict(expected: UInt64, actual: UInt64?) -> Self { Self(.conflict(expected: expected, actual: actual)) }
    /// The session is larger than the backend accepts.
    public static func tooLarge(size: Int, limit: Int) -> Self { Self(.tooLarge(size: size, limit: limit)) }
    /// The stored bytes could not be read back.
    public static func corrupt(_ reason: String) -> Self { Self(.corrupt(reason)) }

    public var isUnavailable: Bool { if case .unavailable = base { true } else { false } }
    /// Unavailable, and the operation certainly had no effect (see ``unavailable(_:notApplied:)``).
    public var isUnavailableAndNotApplied: Bool { if case .unavailable(_, true) = base { true } else { false } }
    public var isConflict: Bool { if case .conflict = base { true } else { false } }
    public var isTooLarge: Bool { if case .tooLarge = base { true } else { false } }
    public var isCorrupt: Bool { if case .corrupt = base { true } else { false } }

    /// The backend's words for an unavailable store or a corrupt record (`nil` for the other kinds): for a log
    /// line or a check of your own, without parsing ``description``.
    public var reason: String? {
        switch base {
        case .unavailable(let reason, _), .corrupt(let reason): reason
        case .conflict, .tooLarge: nil
        }
    }
    /// The versions of a conflict: the one the write expected and the one stored (`nil`: the record is gone).
    public var conflictingVersions: (expected: UInt64, actual: UInt64?)? {
        if case .conflict(let expected, let actual) = base { (expected, actual) } else { nil }
    }
    /// The size of a session that was too large, and the backend's limit.
    public var sizeAndLimit: (size: Int, limit: Int)? {
        if case .tooLarge(let size, let limit) = base { (size, limit) } else { nil }
    }

    public var description: String {
        switch base {
        case .unavailable(let reason, _): "session store unavailable: \(reason)"
        case .conflict(let expected, let actual):
            "session version conflict: expected version \(expected), store has \(actual.map(String.init) ?? "none")"
        case .tooLarge(let size, let limit): "session too large: \(size) bytes, the limit is \(limit) bytes"
        case .corrupt(let reason): "session record corrupt: \(reason)"
        }
    }
}
