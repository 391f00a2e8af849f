import ConcordHummingbird
import ConcordSessions
import ConcordSessionsTesting
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import MetricsTestKit
import Testing

@Suite(.timeLimit(.minutes(3))) struct ConcordSessionMiddlewareTests {
    static let keyOne = SessionKeyRing.Key.generate(id: 1)
    static let keyTwo = SessionKeyRing.Key.generate(id: 2)

    enum Strategy: String, CaseIterable, Sendable { case store, client }

    static func manager(
        _ strategy: Strategy, clock: ManualClock, store: (any SessionStore)? = nil, ring: SessionKeyRing? = nil,
        cookie: SessionCookieConfiguration = .init(), attempts: Int = 8
    ) throws -> SessionManager<ShopSession> {
        let chosen: SessionStrategy = switch strategy {
        case .store: .store(store ?? MemorySessionStore(clock: clock))
        case .client: .client(ring ?? SessionKeyRing(current: keyOne))
        }
        return try SessionManager(
            configuration: .init(strategy: chosen, maximumUpdateAttempts: attempts, cookie: cookie), wallClock: clock.wallClock())
    }

    @Test(arguments: Strategy.allCases)
    func loginCookieNextRequestRegenerateAndLogout(_ strategy: Strategy) async throws {
        let clock = ManualClock()
        let app = SessionTestApp.application(manager: try Self.manager(strategy, clock: clock))
        try await app.test(.live) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/me", method: .get) { response in
                #expect(String(buffer: response.body) == "anonymous")
                #expect(jar.receive(response) == nil)  // anonymous requests get no cookie
            }
            try await client.execute(uri: "/cart/tea", method: .post) { jar.receive($0) }
            let anonymousID = try await client.execute(uri: "/id", method: .get, headers: jar.headers) { String(buffer: $0.body) }
            try await client.execute(uri: "/login/alice", method: .post, headers: jar.headers) { response in
                let received = jar.receive(response)
                let header = try #require(received)
                #expect(header.contains("HttpOnly"))
                #expect(header.contains("SameSite=Lax"))
                #expect(header.contains("Path=/"))
                #expect(header.contains("Max-Age=43200"))
                #expect(response.headers[.cacheControl] == "no-store")
            }
            try await client.execute(uri: "/me", method: .get, headers: jar.headers) { response in
                #expect(String(buffer: response.body) == "alice")
                #expect(jar.receive(response) == nil)  // unchanged session: no Set-Cookie
            }
            let loggedInID = try await client.execute(uri: "/id", method: .get, headers: jar.headers) { String(buffer: $0.body) }
            #expect(loggedInID != anonymousID)  // login regenerated the id
            try await client.execute(uri: "/cart", method: .get, headers: jar.headers) { #expect(String(buffer: $0.body) == "tea") }
            let beforeLogout = jar
            try await client.execute(uri: "/logout", method: .post, headers: jar.headers) { response in
                let received = jar.receive(response)
                let header = try #require(received)
                #expect(header.contains("Max-Age=0"))
            }
            #expect(jar.value == nil)
            // Replaying the cookie from before the logout: for the store strategy the session is gone.
            if strategy == .store {
                try await client.execute(uri: "/me", method: .get, headers: beforeLogout.headers) {
                    #expect(String(buffer: $0.body) == "anonymous")
                }
            }
        }
    }

    /// Browsers may send several `Cookie` header lines (HTTP/2 splits them); the session cookie is found in any.
    @Test(arguments: Strategy.allCases)
    func theSessionCookieIsFoundInAnyCookieHeader(_ strategy: Strategy) async throws {
        let app = SessionTestApp.application(manager: try Self.manager(strategy, clock: ManualClock()))
        try await app.test(.live) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/login/bea", method: .post) { jar.receive($0) }
            let value = try #require(jar.value)
            var headers = HTTPFields()
            headers.append(.init(name: .cookie, value: "theme=dark; concord_session_old=x"))
            headers.append(.init(name: .cookie, value: "lang=en; concord_session=\(value)"))
            try await client.execute(uri: "/me", method: .get, headers: headers) { #expect(String(buffer: $0.body) == "bea") }
            var unrelated = HTTPFields()
            unrelated.append(.init(name: .cookie, value: "theme=dark"))
            try await client.execute(uri: "/me", method: .get, headers: unrelated) { #expect(String(buffer: $0.body) == "anonymous") }
        }
    }

    /// A browser that still holds a stale session cookie of another Path or Domain sends both, perhaps the stale
    /// one first: the live one is found (only the first was tried, so such a user stayed logged out however often
    /// they logged in), in one header or across two; the stale one is still counted as refused.
    @Test(arguments: Strategy.allCases)
    func aStaleSessionCookieBeforeTheLiveOneDoesNotHideIt(_ strategy: Strategy) async throws {
        let manager = try Self.manager(strategy, clock: ManualClock())
        let app = SessionTestApp.application(manager: manager)
        try await app.test(.live) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/login/dan", method: .post) { jar.receive($0) }
            let value = try #require(jar.value)
            let oneHeader: HTTPFields = [.cookie: "concord_session=stale-garbage; theme=dark; concord_session=\(value)"]
            try await client.execute(uri: "/me", method: .get, headers: oneHeader) { #expect(String(buffer: $0.body) == "dan") }
            var twoHeaders = HTTPFields()
            twoHeaders.append(.init(name: .cookie, value: "concord_session=stale-garbage"))
            twoHeaders.append(.init(name: .cookie, value: "concord_session=\(value)"))
            try await client.execute(uri: "/me", method: .get, headers: twoHeaders) { #expect(String(buffer: $0.body) == "dan") }
            #expect(manager.rejectionCounts.values.reduce(0, +) >= 2)
            let onlyStale: HTTPFields = [.cookie: "concord_session=stale-garbage; concord_session=also-stale"]
            try await client.execute(uri: "/me", method: .get, headers: onlyStale) { #expect(String(buffer: $0.body) == "anonymous") }
        }
    }

    @Test(arguments: Strategy.allCases)
    func idleSessionsExpire(_ strategy: Strategy) async throws {
        let clock = ManualClock()
        let app = SessionTestApp.application(manager: try Self.manager(strategy, clock: clock))
        try await app.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/login/bob", method: .post) { jar.receive($0) }
            clock.advance(by: .seconds(31 * 60))
            try await client.execute(uri: "/me", method: .get, headers: jar.headers) { #expect(String(buffer: $0.body) == "anonymous") }
        }
    }

    @Test(arguments: Strategy.allCases)
    func tamperedCookiesMeanNoSessionNeverAnError(_ strategy: Strategy) async throws {
        let clock = ManualClock()
        let manager = try Self.manager(strategy, clock: clock)
        let metrics = TestMetrics()
        let app = SessionTestApp.application(manager: manager, metrics: metrics)
        try await app.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/login/eve", method: .post) { jar.receive($0) }
            let value = try #require(jar.value)
            for tampered in [String(value.dropLast()) + (value.last == "A" ? "B" : "A"), String(value.prefix(10)), "%%%", ""] {
                var forged = jar
                forged.value = tampered
                try await client.execute(uri: "/me", method: .get, headers: forged.headers) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body) == "anonymous")
                }
            }
            #expect(manager.rejectionCounts.values.reduce(0, +) >= 3)
            // Each refusal is counted once in the exported metric, by reason.
            let exported = metrics.counters.filter { $0.label == "concord_session_cookie_rejected_total" }
                .reduce(0) { $0 + $1.totalValue }
            #expect(exported == Int64(manager.rejectionCounts.values.reduce(0, +)))
        }
    }

    @Test func keyRotationThroughTheApp() async throws {
        let clock = ManualClock()
        let before = SessionTestApp.application(manager: try Self.manager(.client, clock: clock, ring: SessionKeyRing(current: Self.keyOne)))
        let oldCookie = try await before.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/login/frank", method: .post) { jar.receive($0) }
            return jar
        }
        let rotated = SessionKeyRing(current: Self.keyTwo, previous: [Self.keyOne])
        let after = SessionTestApp.application(manager: try Self.manager(.client, clock: clock, ring: rotated))
        let newCookie = try await after.test(.router) { client in
            var jar = oldCookie
            try await client.execute(uri: "/me", method: .get, headers: jar.headers) { #expect(String(buffer: $0.body) == "frank") }
            try await client.execute(uri: "/cart/pen", method: .post, headers: jar.headers) { jar.receive($0) }
            return jar
        }
        #expect(newCookie.value != nil)
        #expect(newCookie.value != oldCookie.value)
        // New cookies are sealed with key 2: a server that only knows key 1 cannot open them; old ones still open.
        try await before.test(.router) { client in
            try await client.execute(uri: "/me", method: .get, headers: newCookie.headers) { #expect(String(buffer: $0.body) == "anonymous") }
            try await client.execute(uri: "/me", method: .get, headers: oldCookie.headers) { #expect(String(buffer: $0.body) == "frank") }
        }
        try await after.test(.router) { client in
            try await client.execute(uri: "/cart", method: .get, headers: newCookie.headers) { #expect(String(buffer: $0.body) == "pen") }
        }
    }

    @Test func anOversizedClientSessionIsA500NamingTheSize() async throws {
        let app = SessionTestApp.application(manager: try Self.manager(.client, clock: ManualClock()))
        try await app.test(.router) { client in
            try await client.execute(uri: "/note/6000", method: .post) { response in
                #expect(response.status == .internalServerError)
                #expect(response.headers[values: .setCookie].isEmpty)
                let body = String(buffer: response.body)
                #expect(body.contains("4096-byte limit"))
                #expect(body.contains("bytes"))
            }
            try await client.execute(uri: "/note/100", method: .post) { #expect($0.status == .ok) }
        }
    }

    /// The test app on a memory store that can be failed, with its log lines captured at info.
    private static func appOnAFaultInjectingStore() throws -> (some ApplicationProtocol, FaultInjectingSessionStore, LogCapture) {
        let clock = ManualClock()
        let store = FaultInjectingSessionStore(wrapping: MemorySessionStore(clock: clock))
        let logs = LogCapture()
        var logger = Logger(label: "test") { _ in logs }
        logger.logLevel = .info
        let app = SessionTestApp.application(manager: try Self.manager(.store, clock: clock, store: store), logger: logger)
        return (app, store, logs)
    }

    @Test func storeDownIsA503AndALogLine() async throws {
        let (app, store, logs) = try Self.appOnAFaultInjectingStore()
        try await app.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/cart/milk", method: .post) { jar.receive($0) }
            store.isDown = true
            try await client.execute(uri: "/cart", method: .get, headers: jar.headers) { #expect($0.status == .serviceUnavailable) }
            try await client.execute(uri: "/cart/eggs", method: .post) { #expect($0.status == .serviceUnavailable) }
            store.isDown = false
            try await client.execute(uri: "/cart", method: .get, headers: jar.headers) { #expect(String(buffer: $0.body) == "milk") }
        }
        #expect(logs.messages.filter { $0.contains("session store unavailable") }.count == 2)
    }

    /// A request that only reads its session once the touch interval has passed (so its commit is a touch) is
    /// answered even when the store cannot take writes: the touch is skipped, with a warning; a change still gets 503
    /// (it would be lost). Before 2026-12-03 the read-only page was a 503 too.
    @Test func aTouchTheStoreCannotTakeIsSkippedNotA503() async throws {
        let clock = ManualClock()
        let store = FaultInjectingSessionStore(wrapping: MemorySessionStore(clock: clock))
        let logs = LogCapture()
        var logger = Logger(label: "test") { _ in logs }
        logger.logLevel = .info
        let manager = try Self.manager(.store, clock: clock, store: store)
        let app = SessionTestApp.application(manager: manager, logger: logger)
        try await app.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/cart/milk", method: .post) { jar.receive($0) }
            store.writesAreDown = true
            clock.advance(by: manager.configuration.touchInterval + .seconds(1))
            try await client.execute(uri: "/cart", method: .get, headers: jar.headers) { response in
                #expect(response.status == .ok && String(buffer: response.body) == "milk")
            }
            try await client.execute(uri: "/cart/eggs", method: .post, headers: jar.headers) { #expect($0.status == .serviceUnavailable) }
            store.writesAreDown = false
            try await client.execute(uri: "/cart", method: .get, headers: jar.headers) { #expect(String(buffer: $0.body) == "milk") }
        }
        #expect(logs.messages.filter { $0.contains("session store unavailable for a touch; skipped") }.count == 1, "\(logs.messages)")
    }

    /// Any other store failure is a 500 whose body names nothing of the store (its text goes to the log only).
    @Test func aStoreFailureIsA500WithoutTheStoresWords() async throws {
        let (app, store, logs) = try Self.appOnAFaultInjectingStore()
        try await app.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/cart/milk", method: .post) { jar.receive($0) }
            store.failure = .corrupt("row 7 of /var/lib/app/sessions.sqlite")
            // (A corrupt record read back is a missing session; the save then fails.)
            try await client.execute(uri: "/cart/eggs", method: .post, headers: jar.headers) { response in
                #expect(response.status == .internalServerError)
                #expect(!String(buffer: response.body).contains("sessions.sqlite"), "\(String(buffer: response.body))")
            }
        }
        #expect(logs.messages.contains { $0.contains("session save failed") }, "\(logs.messages)")
    }

    @Test func concurrentCartAdditionsThroughTheAppAreAllKept() async throws {
        let clock = ManualClock()
        let store = MemorySessionStore(clock: clock)
        let requests = 32
        let app = SessionTestApp.application(manager: try Self.manager(.store, clock: clock, store: store, attempts: requests))
        try await app.test(.router) { client in
            var jar = SessionCookieJar()
            try await client.execute(uri: "/login/gina", method: .post) { jar.receive($0) }
            let headers = jar.headers
            try await withThrowingTaskGroup(of: Void.self) { group in
                for item in 0..<requests {
                    group.addTask {
                        try await client.execute(uri: "/cart/item\(item)", method: .post, headers: headers) { #expect($0.status == .ok) }
                    }
                }
                try await group.waitForAll()
            }
            let cart = try await client.execute(uri: "/cart", method: .get, headers: headers) { String(buffer: $0.body) }
            #expect(cart.split(separator: ",").map(String.init).sorted() == (0..<requests).map { "item\($0)" }.sorted())
        }
    }

    @Test func cookieAttributesFollowTheConfiguration() async throws {
        let cookie = SessionCookieConfiguration(name: "sid", hostPrefix: true, sameSite: .strict, secure: true)
        let app = SessionTestApp.application(manager: try Self.manager(.store, clock: ManualClock(), cookie: cookie))
        try await app.test(.router) { client in
            var jar = SessionCookieJar(name: "__Host-sid")
            try await client.execute(uri: "/login/hank", method: .post) { response in
                let received = jar.receive(response)
                let header = try #require(received)
                #expect(header.hasPrefix("__Host-sid="))
                #expect(header.contains("; Secure"))
                #expect(header.contains("SameSite=Strict"))
                #expect(!header.contains("Domain"))
            }
            try await client.execute(uri: "/me", method: .get, headers: jar.headers) { #expect(String(buffer: $0.body) == "hank") }
        }
    }

    @Test func invalidConfigurationIsRefusedAtStartup() {
        let error = #expect(throws: SessionError.self) {
            _ = try ConcordSessionMiddleware<ConcordRequestContext<ShopSession>>(
                configuration: .init(strategy: .local(), cookie: .init(hostPrefix: true)))
        }
        #expect(error?.description.contains("__Host-") == true)
    }
}
