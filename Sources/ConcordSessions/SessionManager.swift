import Foundation
import Synchronization

/// Loads a request's session from its cookie and commits the handler's changes: the framework-independent engine
/// behind the Hummingbird middleware (and any other integration).
///
/// ```swift
/// let sessions = try SessionManager<ShopSession>(configuration: .init(strategy: .local()))
/// let handle = SessionHandle<ShopSession>()
/// try await sessions.load(cookieValue: cookieFromRequest, into: handle)
/// handle.update { $0.cart.append("book") }                 // the handler's work
/// let cookie = try await sessions.commit(handle)           // → Set-Cookie, if any
/// ```
/// Strict ids: a cookie naming an id the store does not hold (never issued, deleted, expired) is never adopted;
/// the request starts without a session and a new id is issued only if it creates one.
public final class SessionManager<Value: SessionValue>: Sendable {
    public let configuration: ConcordSessionConfiguration
    private let wallClock: SessionWallClock
    private let rejections = Mutex([SessionRejection: Int]())
    private let idleTimeout: Int64
    private let absoluteTimeout: Int64
    private let touchInterval: Int64
    /// Decoded records by session id with the bytes they were decoded from (see
    /// ``ConcordSessionConfiguration/decodedValueCacheSize``).
    private let decodedRecords = Mutex(LRUTable<String, DecodedSessionRecord>())

    /// - Throws: ``SessionError`` `.invalidConfiguration` for inconsistent settings.
    public init(configuration: ConcordSessionConfiguration, wallClock: SessionWallClock = .system) throws {
        try configuration.validate()
        self.configuration = configuration
        self.wallClock = wallClock
        self.idleTimeout = configuration.idleTimeout.clampedMilliseconds
        self.absoluteTimeout = configuration.absoluteTimeout.clampedMilliseconds
        self.touchInterval = configuration.touchInterval.clampedMilliseconds
    }

    /// Refused cookies since start, by reason.
    public var rejectionCounts: [SessionRejection: Int] { rejections.withLock { $0 } }

    /// Ends every session of `userID` (after a password change, or "log out everywhere").
    /// - Returns: how many sessions were deleted. Sealed-cookie sessions live only in browsers and cannot be
    ///   revoked before they expire, so the client strategy returns 0; keep its timeouts short if that matters.
    public func destroyAllSessions(ofUser userID: String) async throws -> Int {
        guard let store = configuration.strategy.store else { return 0 }
        return try await store.deleteAll(forUser: userID)
    }

    // MARK: Load

    /// Reads the session `cookieValue` names (the session cookie's value, if the request had one) into `handle`.
    /// - Throws: ``SessionStoreError`` when the store cannot be reached (answer 503); a bad cookie is not an error.
    /// - Returns: what loading found (also in `handle.loadOutcome`).
    @discardableResult
    public func load(cookieValue: (some StringProtocol)?, into handle: SessionHandle<Value>) async throws -> SessionLoadOutcome {
        try await load(cookieValue: cookieValue.map { Substring($0) }, into: handle)
    }

    /// ``load(cookieValue:into:)`` for the `Substring` a cookie lookup returns: a concrete entry point, because a
    /// generic one called from another module runs unspecialised.
    @discardableResult
    public func load(cookieValue: Substring?, into handle: SessionHandle<Value>) async throws -> SessionLoadOutcome {
        let now = wallClock.now
        guard let cookieValue else {
            handle.attach(SessionState(base: nil, cookiePresented: false), wallClock: wallClock, outcome: .none, loadedAt: now)
            return .none
        }
        let result: Result<SessionSnapshot, SessionRejection>
        switch configuration.strategy.kind {
        case .store(let store): result = try await loadStored(id: String(cookieValue), from: store, now: now)
        case .client(let sealer): result = openSealed(cookieValue, with: sealer, now: now)
        }
        switch result {
        case .success(let snapshot):
            handle.attach(SessionState(base: snapshot, cookiePresented: true), wallClock: wallClock, outcome: .loaded, loadedAt: now)
            return .loaded
        case .failure(let rejection):
            rejections.withLock { $0[rejection, default: 0] += 1 }
            handle.attach(SessionState(base: nil, cookiePresented: true), wallClock: wallClock, outcome: .rejected(rejection), loadedAt: now)
            return .rejected(rejection)
        }
    }

    private func loadStored(id: String, from store: any SessionStore, now: Int64) async throws -> Result<SessionSnapshot, SessionRejection> {
        guard SessionID.isWellFormed(id) else { return .failure(.malformed) }
        let stored: StoredSession?
        do {
            stored = try await store.load(id: id)
        } catch let error as SessionStoreError where error.isCorrupt {
            return .failure(.corrupt)
        }
        guard let stored else { return .failure(.unknownID) }
        guard let decoded = decode(stored.payload, id: id), decoded.snapshot.id == id else { return .failure(.corrupt) }
        let result = snapshot(of: decoded, version: stored.version, now: now)
        if case .failure(.expired) = result {
            // Expired by our clock before the store's TTL: remove it now (best effort; the TTL gets it anyway).
            try? await store.delete(id: id)
        }
        return result
    }

    private func openSealed(_ text: some StringProtocol, with sealer: SessionSealer, now: Int64) -> Result<SessionSnapshot, SessionRejection> {
        switch sealer.open(text, now: now) {
        case .failure(let rejection): return .failure(rejection)
        case .success(let plaintext):
            guard let decoded = decode(plaintext, id: nil), SessionID.isWellFormed(decoded.snapshot.id) else { return .failure(.corrupt) }
            return snapshot(of: decoded, version: 0, now: now)
        }
    }

    private func snapshot(of decoded: DecodedSessionRecord, version: UInt64, now: Int64) -> Result<SessionSnapshot, SessionRejection> {
        let snapshot = decoded.snapshot
        guard now < snapshot.createdAt + absoluteTimeout, now < snapshot.lastAccessAt + idleTimeout else { return .failure(.expired) }
        return .success(snapshot.at(version: version))
    }

    /// The session in `bytes` (a record and its decoded value), or `nil` when either is malformed. Served from the
    /// cache when the same session (`id`, if the caller knows it already) was decoded from the same bytes before:
    /// a request that only reads its session then neither parses the record nor decodes JSON (comparing the
    /// bytes is cheap, and free when a memory store hands back the very buffer it was given).
    private func decode(_ bytes: [UInt8], id: String?) -> DecodedSessionRecord? {
        let capacity = configuration.decodedValueCacheSize
        if capacity > 0, let id, let cached = decodedRecords.withLock({ $0.use(id) }), cached.bytes == bytes {
            return cached
        }
        guard let record = SessionRecord(decoding: bytes) else { return nil }
        if capacity > 0, id == nil, let cached = decodedRecords.withLock({ $0.use(record.id) }), cached.bytes == bytes {
            return cached
        }
        guard let value = try? JSONDecoder().decode(Value.self, from: Data(record.value)) else { return nil }
        let decoded = DecodedSessionRecord(
            bytes: bytes,
            snapshot: SessionSnapshot(
                id: record.id, userID: record.userID, createdAt: record.createdAt, lastAccessAt: record.lastAccessAt,
                value: value, encodedValue: record.value, version: 0))
        // Only decoded values are cached, never a value just encoded: a lossy `Codable` type may not read back
        // exactly what it wrote.
        if capacity > 0 {
            decodedRecords.withLock { table in
                table.set(record.id, decoded)
                if table.count > capacity, let oldest = table.leastRecent { table.remove(oldest.key) }
            }
        }
        return decoded
    }

    // MARK: Commit

    /// Whether ``commit(_:)`` has anything to do; `false` for a request that only read its session (no touch due).
    /// Lets an integration (the Hummingbird middleware; one for another framework) skip the asynchronous call on
    /// most requests.
    public func needsCommit(_ handle: SessionHandle<Value>) -> Bool {
        !handle.needsNoCommit(touchInterval: touchInterval)
    }

    /// Writes what the handler changed (nothing, for an unchanged session that needs no touch) and says what the
    /// cookie must do.
    /// - Throws: ``SessionStoreError`` (`.unavailable` → 503) and ``SessionError`` (`.cookieTooLarge`,
    ///   `.tooManyConflicts`).
    public func commit(_ handle: SessionHandle<Value>) async throws -> SessionCookieUpdate {
        try await commitReportingSkippedTouch(handle).update
    }

    /// ``commit(_:)``, and the store's error when the only write was a touch (a request that read its session once
    /// `touchInterval` had passed) and the store could not take it: that touch is skipped — the response goes out,
    /// nothing the user did is lost, and a later request touches again — instead of turning a page that only read
    /// the session into a 503 (as it did before 2026-12-03, e.g. while another process held SQLite's write lock).
    /// The caller logs and counts it (``ConcordSessionMiddleware`` does).
    public func commitReportingSkippedTouch(_ handle: SessionHandle<Value>) async throws
        -> (update: SessionCookieUpdate, skippedTouch: SessionStoreError?)
    {
        // A request that only read its session (no touch due when it was loaded) commits nothing: decided in place,
        // without copying the state out and back or reading the clock again.
        if handle.needsNoCommit(touchInterval: touchInterval) { return (.unchanged, nil) }
        guard var state = handle.withState({ $0 }) else { return (.unchanged, nil) }
        let result: (update: SessionCookieUpdate, skippedTouch: SessionStoreError?)
        switch configuration.strategy.kind {
        case .store(let store): result = try await commitStored(&state, to: store)
        case .client(let sealer): result = (try commitSealed(state, with: sealer), nil)
        }
        handle.withState { $0 = state }
        return result
    }

    private func commitStored(_ state: inout SessionState, to store: any SessionStore) async throws
        -> (update: SessionCookieUpdate, skippedTouch: SessionStoreError?)
    {
        for attempt in 0..<configuration.maximumUpdateAttempts {
            let now = wallClock.now
            let plan = try state.plan(now: now, touchInterval: touchInterval, encodeValue: encode)
            var cookie = cookieUpdate(for: plan, createdAt: plan.write?.record.createdAt, now: now)
            var skippedTouch: SessionStoreError?
            if let (record, expectedVersion) = plan.write {
                let ttl = Duration.milliseconds(max(1, min(idleTimeout, record.createdAt + absoluteTimeout - now)))
                do {
                    _ = try await store.save(
                        StoredSession(id: record.id, payload: record.encoded(), userID: record.userID), ttl: ttl,
                        expectedVersion: expectedVersion)
                } catch let error as SessionStoreError where error.isUnavailable && plan.isTouch {
                    skippedTouch = error
                } catch let error as SessionStoreError where error.isConflict {
                    if plan.isTouch {
                        cookie = .unchanged  // another request wrote the session, which refreshed it as well
                    } else {
                        // Paused before reading the session again, not after: a writer that re-read and then
                        // waited would write on a stale read and meet the others once more.
                        if attempt + 1 < configuration.maximumUpdateAttempts { try await backOff(afterConflict: attempt + 1) }
                        let reread: SessionSnapshot?
                        if let id = state.presentedID, case .success(let snapshot) = try await loadStored(id: id, from: store, now: now) {
                            reread = snapshot
                        } else {
                            reread = nil
                        }
                        state.rebase(on: reread, now: now)
                        continue
                    }
                }
            }
            for id in plan.idsToDelete { try await store.delete(id: id) }
            return (cookie, skippedTouch)
        }
        throw SessionError.tooManyConflicts(attempts: configuration.maximumUpdateAttempts)
    }

    /// The pause before re-applying a change after the `conflicts`-th conflict (``ConcordSessionConfiguration/conflictBackoff``):
    /// writers that met spread out instead of meeting again.
    private func backOff(afterConflict conflicts: Int) async throws {
        let base = configuration.conflictBackoff
        guard base > .zero else { return }
        let half = base * (1 << min(conflicts - 1, 6)) / 2
        try await Task.sleep(for: half + half * Double.random(in: 0..<1))
    }

    private func commitSealed(_ state: SessionState, with sealer: SessionSealer) throws -> SessionCookieUpdate {
        let now = wallClock.now
        let plan = try state.plan(now: now, touchInterval: touchInterval, encodeValue: encode)
        guard let (record, _) = plan.write else { return plan.cookie == .expire ? .expire : .unchanged }
        let expiresAt = min(now + idleTimeout, record.createdAt + absoluteTimeout)
        let value = try sealer.seal(record.encoded(), expiresAt: expiresAt)
        let size = configuration.cookie.fullName.utf8.count + 1 + value.utf8.count
        guard size <= sealer.configuration.maximumCookieSize else {
            throw SessionError.cookieTooLarge(size: size, limit: sealer.configuration.maximumCookieSize)
        }
        return .set(value: value, maxAge: maxAge(createdAt: record.createdAt, now: now))
    }

    private func cookieUpdate(for plan: SessionState.Plan, createdAt: Int64?, now: Int64) -> SessionCookieUpdate {
        switch plan.cookie {
        case .unchanged: .unchanged
        case .expire: .expire
        case .issue: .set(value: plan.write?.record.id ?? "", maxAge: maxAge(createdAt: createdAt ?? now, now: now))
        }
    }

    /// Seconds left until the absolute timeout.
    private func maxAge(createdAt: Int64, now: Int64) -> Int {
        Int(max(0, createdAt + absoluteTimeout - now) / 1000)
    }

    /// Encodes a state's value (`nil`: the empty `Value()`).
    private func encode(_ value: (any SessionValue)?) throws -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode((value as? Value) ?? Value()))
        } catch {
            throw SessionError.encodingFailed("\(error)")
        }
    }
}

/// A decoded session with the bytes it was decoded from. Top-level, not nested in the generic manager, so that
/// it does not depend on `Value` (see ``SessionSnapshot``).
private struct DecodedSessionRecord {
    var bytes: [UInt8]
    /// Its `version` is whichever version it was first read at; callers set their own.
    var snapshot: SessionSnapshot
}
