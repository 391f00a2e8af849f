import ConcordSessions
import Testing

/// The behaviour every ``SessionStore`` must show, as checks a store's own test target runs.
///
/// ```swift
/// @Test(arguments: SessionStoreConformance.Check.allCases)
/// func conformance(_ check: SessionStoreConformance.Check) async throws {
///     try await SessionStoreConformance.run(check, options: .init(maximumPayloadSize: 1 << 20)) {
///         try await makeMyStore()   // an empty store (or an isolated key prefix) per call
///     }
/// }
/// ```
/// Failures are recorded with `Issue.record` at the caller's source location, prefixed with the check's name.
/// A store that needs cleanup passes a `withStore:` closure instead of `makeStore:`.
public enum SessionStoreConformance {
    /// One behaviour of the contract in ``SessionStore``.
    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// `load`, `version`, `touch` and `delete` of an id never saved.
        case missingRecord
        /// Payload, user and version come back as saved; re-saving replaces them.
        case roundTrip
        /// Every byte value, an empty payload and a large one survive.
        case binaryPayload
        /// Unconditional saves number versions 1, 2, 3…
        case versionsIncrement
        /// `expectedVersion` 0 creates only; a stale or wrong version is a `.conflict`, and writes nothing.
        case conditionalSave
        /// Deleting removes the record and its version; deleting again is fine; the id can be reused.
        case delete
        /// `touch` keeps payload and version.
        case touchKeepsRecord
        /// A record is gone once its TTL has passed (load, version, touch, user index), and its id is free.
        case expiry
        /// `touch` extends the life of a record beyond its original TTL.
        case touchExtendsLife
        /// `sessionIDs(forUser:)` follows saves that change the user, and deletes.
        case userIndex
        /// `deleteAll(forUser:)` deletes exactly that user's sessions and counts them.
        case deleteAllForUser
        /// Many writers doing load → change → save(expectedVersion) with retries lose no change.
        case concurrentUpdates
        /// Many concurrent creates of one id (`expectedVersion` 0): exactly one wins.
        case concurrentCreates
        /// A payload over the store's declared limit throws `.tooLarge` and stores nothing.
        case tooLarge

        public var description: String { rawValue }
    }

    /// How the suite drives a particular store.
    public struct Options: Sendable {
        /// A TTL long enough never to expire during a check. Default 10 minutes.
        public var longTTL: Duration
        /// The TTL of records that the expiry checks let expire. Default 1 s.
        public var shortTTL: Duration
        /// Extra time waited past `shortTTL` before expecting expiry (store clock granularity). Default 500 ms.
        public var expiryMargin: Duration
        /// Lets time pass: sleeps by default; stores on a ``ManualClock`` advance it instead.
        public var letTimePass: @Sendable (Duration) async throws -> Void
        /// The largest payload the store accepts (`nil`: the store declares none, which `tooLarge` reports).
        public var maximumPayloadSize: Int?
        /// Size of the large payload in `binaryPayload` (capped at `maximumPayloadSize`). Default 64 KiB.
        public var largePayloadSize: Int
        /// Concurrent tasks in `concurrentUpdates` / `concurrentCreates`. Default 16.
        public var concurrentWriters: Int

        public init(
            longTTL: Duration = .seconds(600),
            shortTTL: Duration = .seconds(1),
            expiryMargin: Duration = .milliseconds(500),
            letTimePass: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
            maximumPayloadSize: Int? = nil,
            largePayloadSize: Int = 64 * 1024,
            concurrentWriters: Int = 16
        ) {
            self.longTTL = longTTL
            self.shortTTL = shortTTL
            self.expiryMargin = expiryMargin
            self.letTimePass = letTimePass
            self.maximumPayloadSize = maximumPayloadSize
            self.largePayloadSize = largePayloadSize
            self.concurrentWriters = concurrentWriters
        }

        /// Options for a store whose time comes from `clock`: expiry checks advance it instead of sleeping.
        public static func manualClock(_ clock: ManualClock, maximumPayloadSize: Int? = nil) -> Self {
            Self(expiryMargin: .milliseconds(1), letTimePass: { clock.advance(by: $0) }, maximumPayloadSize: maximumPayloadSize)
        }
    }

    /// Runs `checks` (all by default), each on a fresh store from `makeStore`.
    public static func run(
        _ checks: [Check] = Check.allCases,
        options: Options = .init(),
        sourceLocation: SourceLocation = #_sourceLocation,
        makeStore: () async throws -> any SessionStore
    ) async throws {
        for check in checks {
            try await run(check, options: options, sourceLocation: sourceLocation, makeStore: makeStore)
        }
    }

    /// Runs one check on a fresh store from `makeStore`.
    public static func run(
        _ check: Check,
        options: Options = .init(),
        sourceLocation: SourceLocation = #_sourceLocation,
        makeStore: () async throws -> any SessionStore
    ) async throws {
        let store = try await makeStore()
        try await ConformanceRun(check: check, options: options, store: store, location: sourceLocation).perform()
    }

    /// Runs one check on the store `withStore` lends to its body (and cleans up after).
    public static func run(
        _ check: Check,
        options: Options = .init(),
        sourceLocation: SourceLocation = #_sourceLocation,
        withStore: (_ body: (any SessionStore) async throws -> Void) async throws -> Void
    ) async throws {
        try await withStore { store in
            try await ConformanceRun(check: check, options: options, store: store, location: sourceLocation).perform()
        }
    }
}
