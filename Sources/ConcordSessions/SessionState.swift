/// The pure heart of a request's session: what was read, what the handler changed, and what must be written.
///
/// No I/O and no clock reads happen here; ``SessionManager`` feeds it the loaded snapshot and the time, and
/// carries out the ``SessionState/Plan`` it returns (save, delete, cookie). The value is an `any SessionValue`
/// (`nil`: the app's empty `Value()`), so this code is compiled once, not run as an unspecialised generic.
struct SessionState: Sendable {
    /// The session as read (nil: the request brought none, or one that could not be adopted).
    private(set) var base: SessionSnapshot?
    /// What the handler did, in order.
    private(set) var changes: [SessionChange] = []
    /// Whether the request carried a session cookie (so that destroying the session must expire it).
    let cookiePresented: Bool
    /// The id the request's cookie named, if it was adopted.
    var presentedID: String? { base?.id }

    /// The handler's view: the base with all changes applied.
    private(set) var current: Working

    /// Fresh ids handed out to new or regenerated sessions; kept so a replay after a conflict reuses them and the
    /// id a handler saw stays the id that is written.
    private var freshIDs: [String] = []

    struct Working: Sendable {
        var id: String?
        var userID: String?
        var createdAt: Int64?
        var lastAccessAt: Int64?
        /// The value; `nil` stands for the app's `Value()` (no session, or a destroyed one).
        var value: (any SessionValue)?
        /// The value or user changed, or the session is new or regenerated: it must be written.
        var needsWrite = false
        /// Ids whose records must be deleted once the write succeeded (regenerated or destroyed sessions).
        var idsToDelete: [String] = []
        /// The handler destroyed the session (the browser must drop the cookie unless a new session follows).
        var destroyed = false
    }

    /// What committing must do.
    struct Plan: Sendable {
        /// The record to write and the version it must replace (0: must not exist), or nil.
        var write: (record: SessionRecord, expectedVersion: UInt64)?
        /// Whether the write is only a throttled touch (a conflict then means someone else refreshed it).
        var isTouch: Bool
        var idsToDelete: [String]
        var cookie: CookieDirective
    }

    enum CookieDirective: Sendable, Equatable {
        case unchanged
        /// Issue the cookie for this id / record.
        case issue
        case expire
    }

    init(base: SessionSnapshot?, cookiePresented: Bool) {
        self.base = base
        self.cookiePresented = cookiePresented
        self.current = Working(
            id: base?.id, userID: base?.userID, createdAt: base?.createdAt, lastAccessAt: base?.lastAccessAt,
            value: base?.value)
    }

    mutating func apply(_ change: SessionChange, now: Int64) {
        changes.append(change)
        var cursor = 0
        current = replay(on: base, now: now, freshIDCursor: &cursor)
    }

    /// After a conflict: the newest stored session becomes the base and the changes are replayed on it.
    mutating func rebase(on newBase: SessionSnapshot?, now: Int64) {
        base = newBase
        var cursor = 0
        current = replay(on: newBase, now: now, freshIDCursor: &cursor)
    }

    private mutating func replay(on base: SessionSnapshot?, now: Int64?, freshIDCursor cursor: inout Int) -> Working {
        var working = Working(
            id: base?.id, userID: base?.userID, createdAt: base?.createdAt, lastAccessAt: base?.lastAccessAt,
            value: base?.value)
        for change in changes {
            switch change {
            case .update(let body):
                body(&working.value)
                ensureIdentity(&working, now: now, cursor: &cursor)
                working.needsWrite = true
            case .setUser(let userID):
                working.userID = userID
                ensureIdentity(&working, now: now, cursor: &cursor)
                working.needsWrite = true
            case .regenerate:
                guard let oldID = working.id else { break }  // nothing issued yet: the new session gets a fresh id anyway
                if oldID == base?.id { working.idsToDelete.append(oldID) }
                working.id = nextFreshID(&cursor)
                working.createdAt = now
                working.needsWrite = true
            case .destroy:
                if let id = working.id, id == base?.id { working.idsToDelete.append(id) }
                working = Working(value: nil, idsToDelete: working.idsToDelete, destroyed: true)
            }
        }
        return working
    }

    private mutating func ensureIdentity(_ working: inout Working, now: Int64?, cursor: inout Int) {
        guard working.id == nil else { return }
        working.id = nextFreshID(&cursor)
        working.createdAt = now
    }

    private mutating func nextFreshID(_ cursor: inout Int) -> String {
        if cursor == freshIDs.count { freshIDs.append(SessionID.generate()) }
        defer { cursor += 1 }
        return freshIDs[cursor]
    }

    /// Whether committing would do nothing: no change, and no touch due (``plan(now:touchInterval:encodeValue:)``
    /// would plan no write, no delete and leave the cookie alone). Most requests only read their session.
    func needsNoCommit(now: Int64, touchInterval: Int64) -> Bool {
        guard changes.isEmpty else { return false }
        guard let base else { return true }
        return now - base.lastAccessAt < touchInterval
    }

    /// What to write, delete and tell the browser, given the time and the value encoder.
    /// An unchanged session is rewritten with a new last-access time once `touchInterval` ms have passed since
    /// the last one (rolling idle expiry, throttled so most requests write nothing).
    func plan(now: Int64, touchInterval: Int64, encodeValue: ((any SessionValue)?) throws -> [UInt8]) throws -> Plan {
        let working = current
        guard let id = working.id else {
            // Only an explicit destroy expires the cookie. A refused cookie is left alone: it may be a stale id
            // racing a concurrent login, and expiring it would also drop the new cookie that login just set.
            let cookie: CookieDirective = working.destroyed && cookiePresented ? .expire : .unchanged
            return Plan(write: nil, isTouch: false, idsToDelete: working.idsToDelete, cookie: cookie)
        }
        let cookie: CookieDirective = id == presentedID ? .unchanged : .issue
        let expectedVersion = id == base?.id ? base!.version : 0
        if working.needsWrite {
            let record = SessionRecord(
                id: id, userID: working.userID, createdAt: working.createdAt ?? now, lastAccessAt: now,
                value: try encodeValue(working.value))
            return Plan(write: (record, expectedVersion), isTouch: false, idsToDelete: working.idsToDelete, cookie: cookie)
        }
        if let base, base.id == id, now - base.lastAccessAt >= touchInterval {
            let record = SessionRecord(
                id: id, userID: base.userID, createdAt: base.createdAt, lastAccessAt: now, value: base.encodedValue)
            return Plan(write: (record, expectedVersion), isTouch: true, idsToDelete: working.idsToDelete, cookie: cookie)
        }
        return Plan(write: nil, isTouch: false, idsToDelete: working.idsToDelete, cookie: cookie)
    }
}
