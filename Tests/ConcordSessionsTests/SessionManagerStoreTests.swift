import ConcordSessions
import ConcordSessionsTesting
import Testing

@Suite(.timeLimit(.minutes(3))) struct SessionManagerStoreTests {
    let store: MemorySessionStore<ManualClock>
    let sessions: SessionHarness

    init() throws {
        let clock = ManualClock()
        let store = MemorySessionStore(clock: clock)
        self.store = store
        self.sessions = try SessionHarness(strategy: { _ in .store(store) }, clock: clock)
    }

    @Test func anonymousRequestsWriteNothing() async throws {
        let (session, cookie) = try await sessions.request(cookie: nil) { #expect($0.value == ShopSession()) }
        #expect(cookie == .unchanged)
        #expect(!session.exists)
        #expect(store.statistics.sessions == 0)
    }

    @Test func aChangeCreatesASessionThatTheNextRequestSees() async throws {
        let first = try await sessions.request(cookie: nil) { $0.update { $0.cart.append("book") } }
        guard case .set(let id, let maxAge) = first.cookie else { Issue.record("no cookie issued"); return }
        #expect(SessionID.isWellFormed(id))
        #expect(maxAge == 12 * 3600)
        #expect(first.session.id == id)
        let second = try await sessions.request(cookie: id) { #expect($0.value.cart == ["book"]) }
        #expect(second.session.loadOutcome == .loaded)
        #expect(second.cookie == .unchanged)
        #expect(try await store.version(id: id) == 1)  // lazy write: reading wrote nothing
    }

    /// Two app nodes on one store: each keeps decoded values cached, yet each sees the other's writes at once.
    @Test func cachedDecodedValuesNeverHideAnotherNodesWrite() async throws {
        let other = try SessionHarness(strategy: { _ in .store(store) }, clock: sessions.clock)
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["a"] } }.cookie.setValue)
        for round in 1...3 {
            #expect(try await other.request(cookie: id).session.value.cart.count == round)
            try await other.request(cookie: id) { $0.update { $0.cart.append("b") } }
            #expect(try await sessions.request(cookie: id).session.value.cart.count == round + 1)
            try await sessions.request(cookie: id) { $0.update { $0.cart.append("c") } }
            #expect(try await sessions.request(cookie: id).session.value.cart.count == round + 2)
            try await sessions.request(cookie: id) { $0.update { $0.cart.removeLast() } }
        }
    }

    @Test func unchangedSessionsAreTouchedOnlyAfterTheTouchInterval() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        sessions.clock.advance(by: .seconds(30))
        try await sessions.request(cookie: id)
        #expect(try await store.version(id: id) == 1)
        sessions.clock.advance(by: .seconds(31))
        let touched = try await sessions.request(cookie: id)
        #expect(touched.cookie == .unchanged)
        #expect(try await store.version(id: id) == 2)
        // Rolling idle expiry: active every 20 minutes, the session outlives the 30-minute idle timeout.
        for _ in 0..<5 {
            sessions.clock.advance(by: .seconds(20 * 60))
            #expect(try await sessions.request(cookie: id).session.value.note == "x")
        }
    }

    @Test func idleSessionsExpire() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        sessions.clock.advance(by: .seconds(30 * 60 + 1))
        let later = try await sessions.request(cookie: id)
        #expect(!later.session.exists)
        #expect(later.session.value == ShopSession())
        #expect(later.session.loadOutcome != .loaded)
    }

    @Test func theAbsoluteTimeoutEndsEvenAnActiveSession() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        for _ in 0..<(12 * 3 - 1) {
            sessions.clock.advance(by: .seconds(20 * 60))
            #expect(try await sessions.request(cookie: id).session.exists)
        }
        sessions.clock.advance(by: .seconds(20 * 60))
        let expired = try await sessions.request(cookie: id)
        // The store TTL is capped at the absolute deadline, so the store may drop it first.
        #expect([.rejected(.expired), .rejected(.unknownID)].contains(expired.session.loadOutcome))
        #expect(!expired.session.exists)
        #expect(try await store.load(id: id) == nil)
    }

    @Test func unknownIDsAreNeverAdopted() async throws {
        let planted = SessionID.generate()
        let (session, cookie) = try await sessions.request(cookie: planted) { $0.update { $0.cart.append("x") } }
        #expect(session.loadOutcome == .rejected(.unknownID))
        let issued = try #require(cookie.setValue)
        #expect(issued != planted)
        #expect(try await store.load(id: planted) == nil)
        #expect(sessions.manager.rejectionCounts[.unknownID] == 1)
    }

    @Test(arguments: ["", "x", "../../etc/passwd", String(repeating: "A", count: 5000), "a;b=c", "\u{0}\u{1}"])
    func malformedCookiesAreCountedAndIgnored(_ cookie: String) async throws {
        let (session, update) = try await sessions.request(cookie: cookie)
        #expect(session.loadOutcome == .rejected(.malformed))
        #expect(update == .unchanged)
        #expect(sessions.manager.rejectionCounts[.malformed] == 1)
    }

    @Test func regenerateMovesTheDataToANewIDAndRetiresTheOld() async throws {
        let old = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["a", "b"] } }.cookie.setValue)
        let (session, cookie) = try await sessions.request(cookie: old) { $0.regenerate() }
        let new = try #require(cookie.setValue)
        #expect(new != old)
        #expect(session.id == new)
        #expect(try await store.load(id: old) == nil)
        #expect(try await sessions.request(cookie: new).session.value.cart == ["a", "b"])
        #expect(try await sessions.request(cookie: old).session.exists == false)
    }

    @Test func logInIndexesTheUserAndRegenerates() async throws {
        let anonymous = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["a"] } }.cookie.setValue)
        let loggedIn = try #require(try await sessions.request(cookie: anonymous) { $0.logIn(userID: "alice") }.cookie.setValue)
        #expect(loggedIn != anonymous)
        let otherDevice = try #require(try await sessions.request(cookie: nil) { $0.logIn(userID: "alice") }.cookie.setValue)
        #expect(try await store.sessionIDs(forUser: "alice").sorted() == [loggedIn, otherDevice].sorted())
        #expect(try await sessions.request(cookie: loggedIn).session.userID == "alice")
        // "Log out everywhere" after a password change.
        #expect(try await sessions.manager.destroyAllSessions(ofUser: "alice") == 2)
        #expect(try await sessions.request(cookie: loggedIn).session.exists == false)
    }

    @Test func destroyDeletesTheSessionAndExpiresTheCookie() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        let (session, cookie) = try await sessions.request(cookie: id) { $0.destroy() }
        #expect(cookie == .expire)
        #expect(!session.exists)
        #expect(try await store.load(id: id) == nil)
    }

    @Test func aChangeAfterDestroyStartsAFreshSession() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "old" } }.cookie.setValue)
        let (_, cookie) = try await sessions.request(cookie: id) {
            $0.destroy()
            $0.update { $0.cart.append("new") }
        }
        let fresh = try #require(cookie.setValue)
        #expect(fresh != id)
        #expect(try await sessions.request(cookie: fresh).session.value == ShopSession(cart: ["new"]))
        #expect(try await store.load(id: id) == nil)
    }

    @Test func concurrentCartAdditionsAreAllKept() async throws {
        let requests = 40
        let concurrent = try SessionHarness(strategy: { _ in .store(store) }, clock: sessions.clock, maximumUpdateAttempts: requests)
        let id = try #require(try await concurrent.request(cookie: nil) { $0.update { $0.userName = "carol" } }.cookie.setValue)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for item in 0..<requests {
                group.addTask {
                    let result = try await concurrent.request(cookie: id) { session in
                        await Task.yield()  // handler work: lets the other requests read the same version
                        session.update { $0.cart.append("item-\(item)") }
                    }
                    #expect(result.cookie == .unchanged)
                }
            }
            try await group.waitForAll()
        }
        let final = try await concurrent.request(cookie: id).session.value
        #expect(final.cart.sorted() == (0..<requests).map { "item-\($0)" }.sorted())
        #expect(final.userName == "carol")
        #expect(try await store.version(id: id) == UInt64(requests + 1))
    }

    @Test func aConflictReappliesTheChangeOnTheNewestValue() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["a"] } }.cookie.setValue)
        let slow = SessionHandle<ShopSession>()
        try await sessions.manager.load(cookieValue: id, into: slow)
        try await sessions.request(cookie: id) { $0.update { $0.cart.append("b") } }  // a parallel request wins
        slow.update { $0.cart.append("c") }
        #expect(slow.value.cart == ["a", "c"])  // what the slow handler saw
        #expect(try await sessions.manager.commit(slow) == .unchanged)
        #expect(slow.value.cart == ["a", "b", "c"])
        #expect(try await sessions.request(cookie: id).session.value.cart == ["a", "b", "c"])
    }

    @Test func givingUpOnConflictsIsAClearError() async throws {
        let strict = try SessionHarness(strategy: { _ in .store(store) }, clock: sessions.clock, maximumUpdateAttempts: 1)
        let id = try #require(try await strict.request(cookie: nil) { $0.update { $0.cart = ["a"] } }.cookie.setValue)
        let slow = SessionHandle<ShopSession>()
        try await strict.manager.load(cookieValue: id, into: slow)
        try await strict.request(cookie: id) { $0.update { $0.cart.append("b") } }
        slow.update { $0.cart.append("c") }
        let error = await #expect(throws: SessionError.self) { try await strict.manager.commit(slow) }
        #expect(error?.isTooManyConflicts == true)
        #expect(error?.description.contains("1 attempts") == true)
    }

    @Test func aSessionDeletedDuringTheRequestIsNotResurrectedUnderItsID() async throws {
        let id = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["a"] } }.cookie.setValue)
        let slow = SessionHandle<ShopSession>()
        try await sessions.manager.load(cookieValue: id, into: slow)
        try await sessions.request(cookie: id) { $0.destroy() }  // logout in another tab
        slow.update { $0.cart.append("b") }
        let cookie = try await sessions.manager.commit(slow)
        let fresh = try #require(cookie.setValue)
        #expect(fresh != id)
        #expect(try await store.load(id: id) == nil)
        #expect(try await sessions.request(cookie: fresh).session.value.cart == ["b"])
    }

    @Test func storeOutagesSurfaceAsUnavailable() async throws {
        let faulty = FaultInjectingSessionStore(wrapping: store)
        let harness = try SessionHarness(strategy: { _ in .store(faulty) }, clock: sessions.clock)
        let id = try #require(try await harness.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        faulty.isDown = true
        let loadError = await #expect(throws: SessionStoreError.self) { try await harness.request(cookie: id) }
        #expect(loadError?.isUnavailable == true)
        // A request without a cookie needs no store until it writes.
        let writeError = await #expect(throws: SessionStoreError.self) {
            try await harness.request(cookie: nil) { $0.update { $0.note = "y" } }
        }
        #expect(writeError?.isUnavailable == true)
        faulty.isDown = false
        #expect(try await harness.request(cookie: id).session.value.note == "x")  // nothing was lost
    }

    @Test func aCorruptRecordIsRefusedNotFatal() async throws {
        let id = SessionID.generate()
        _ = try await store.save(StoredSession(id: id, payload: [1, 2, 3]), ttl: .seconds(60), expectedVersion: nil)
        let (session, _) = try await sessions.request(cookie: id)
        #expect(session.loadOutcome == .rejected(.corrupt))
    }
}
