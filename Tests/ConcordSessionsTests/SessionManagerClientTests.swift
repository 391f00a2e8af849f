import ConcordSessions
import ConcordSessionsTesting
import Crypto
import Testing

@Suite(.timeLimit(.minutes(3))) struct SessionManagerClientTests {
    static let oldKey = SessionKeyRing.Key.generate(id: 1)
    static let newKey = SessionKeyRing.Key.generate(id: 2)

    func harness(
        _ ring: SessionKeyRing = SessionKeyRing(current: oldKey), sealer: SessionSealerConfiguration = .init(),
        clock: ManualClock = ManualClock()
    ) throws -> SessionHarness {
        try SessionHarness(strategy: { _ in .client(ring, sealer: sealer) }, clock: clock)
    }

    @Test(arguments: SessionSealingAlgorithm.allCases)
    func theSessionTravelsInTheCookie(_ algorithm: SessionSealingAlgorithm) async throws {
        let sessions = try harness(sealer: .init(algorithm: algorithm))
        let sealed = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["book"] } }.cookie.setValue)
        #expect(!sealed.contains("book"))
        let next = try await sessions.request(cookie: sealed)
        #expect(next.session.loadOutcome == .loaded)
        #expect(next.session.value.cart == ["book"])
        #expect(next.cookie == .unchanged)
    }

    @Test func everyTamperedByteIsRefusedAndCounted() async throws {
        let sessions = try harness()
        let sealed = try #require(try await sessions.request(cookie: nil) { $0.update { $0.cart = ["book"] } }.cookie.setValue)
        var refused = 0
        let characters = Array(sealed)
        for index in characters.indices {
            var tampered = characters
            tampered[index] = tampered[index] == "A" ? "B" : "A"
            let result = try await sessions.request(cookie: String(tampered))
            #expect(!result.session.exists, "flipping character \(index) was accepted")
            if case .rejected = result.session.loadOutcome { refused += 1 }
        }
        #expect(refused == characters.count)
        let counts = sessions.manager.rejectionCounts
        #expect(counts.values.reduce(0, +) == characters.count)
        #expect((counts[.tampered] ?? 0) > characters.count / 2)
    }

    @Test func truncatedAndGarbageCookiesAreRefused() async throws {
        let sessions = try harness()
        let sealed = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "n" } }.cookie.setValue)
        for length in stride(from: 0, to: sealed.count, by: 3) {
            #expect(try await sessions.request(cookie: String(sealed.prefix(length))).session.exists == false)
        }
        var generator = SplitMix64(seed: 7)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/%;")
        for _ in 0..<300 {
            let length = Int(generator.next() % 200)
            let garbage = String((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
            #expect(try await sessions.request(cookie: garbage).session.exists == false)
        }
    }

    @Test func rotationKeepsOldCookiesAndSealsWithTheNewKey() async throws {
        let clock = ManualClock()
        let before = try harness(SessionKeyRing(current: Self.oldKey), clock: clock)
        let after = try harness(SessionKeyRing(current: Self.newKey, previous: [Self.oldKey]), clock: clock)
        let oldCookie = try #require(try await before.request(cookie: nil) { $0.update { $0.cart = ["a"] } }.cookie.setValue)
        let opened = try await after.request(cookie: oldCookie) { $0.update { $0.cart.append("b") } }
        #expect(opened.session.loadOutcome == .loaded)
        let newCookie = try #require(opened.cookie.setValue)
        #expect(try await after.request(cookie: newCookie).session.value.cart == ["a", "b"])
        // The new cookie names key 2, which the old ring does not know.
        #expect(try await before.request(cookie: newCookie).session.loadOutcome == .rejected(.unknownKey))
        // Once key 1 is retired, its cookies stop working.
        let retired = try harness(SessionKeyRing(current: Self.newKey), clock: clock)
        #expect(try await retired.request(cookie: oldCookie).session.loadOutcome == .rejected(.unknownKey))
    }

    @Test func aForeignKeyWithTheSameIDFailsAuthentication() async throws {
        let mine = try harness(SessionKeyRing(current: .generate(id: 5)))
        let theirs = try harness(SessionKeyRing(current: .generate(id: 5)))
        let sealed = try #require(try await theirs.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        #expect(try await mine.request(cookie: sealed).session.loadOutcome == .rejected(.tampered))
    }

    @Test func expiryIsSealedInsideTheCookie() async throws {
        let sessions = try harness()
        let sealed = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        sessions.clock.advance(by: .seconds(29 * 60))
        #expect(try await sessions.request(cookie: sealed).session.exists)
        // A touch re-seals with a later expiry; the old cookie, replayed, still dies on its own schedule.
        let touched = try await sessions.request(cookie: sealed)
        let resealed = try #require(touched.cookie.setValue)
        sessions.clock.advance(by: .seconds(2 * 60))
        #expect(try await sessions.request(cookie: sealed).session.loadOutcome == .rejected(.expired))
        #expect(try await sessions.request(cookie: resealed).session.value.note == "x")
    }

    @Test func theAbsoluteTimeoutHoldsForClientSessions() async throws {
        let sessions = try harness()
        var cookie = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        for _ in 0..<(12 * 3 - 1) {
            sessions.clock.advance(by: .seconds(20 * 60))
            let result = try await sessions.request(cookie: cookie)
            #expect(result.session.exists)
            cookie = result.cookie.setValue ?? cookie
        }
        sessions.clock.advance(by: .seconds(20 * 60))
        #expect(try await sessions.request(cookie: cookie).session.loadOutcome == .rejected(.expired))
    }

    @Test func anOversizedSessionIsAClearErrorNamingTheSize() async throws {
        let sessions = try harness()
        let error = await #expect(throws: SessionError.self) {
            try await sessions.request(cookie: nil) { $0.update { $0.note = String(repeating: "x", count: 5000) } }
        }
        #expect(error?.isCookieTooLarge == true)
        let message = try #require(error?.description)
        #expect(message.contains("4096-byte limit"))
        let size = try #require(message.split(separator: " ").first { Int($0) != nil && Int($0)! > 4096 })
        #expect(Int(size)! > 5000)
    }

    @Test func compressionLetsRepetitiveSessionsFit() async throws {
        let big = ShopSession(cart: Array(repeating: "sku-1000-blue-large", count: 300))
        let plain = try harness()
        await #expect(throws: SessionError.self) { try await plain.request(cookie: nil) { $0.set(big) } }
        let compressed = try harness(sealer: .init(compression: true))
        let sealed = try #require(try await compressed.request(cookie: nil) { $0.set(big) }.cookie.setValue)
        #expect(sealed.utf8.count < 4096)
        #expect(try await compressed.request(cookie: sealed).session.value == big)
    }

    @Test func destroyExpiresTheCookie() async throws {
        let sessions = try harness()
        let sealed = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        #expect(try await sessions.request(cookie: sealed) { $0.destroy() }.cookie == .expire)
    }

    @Test func regenerateGivesANewIDAndKeepsTheData() async throws {
        let sessions = try harness()
        let sealed = try #require(try await sessions.request(cookie: nil) { $0.update { $0.note = "x" } }.cookie.setValue)
        let before = try await sessions.request(cookie: sealed).session.id
        let (session, cookie) = try await sessions.request(cookie: sealed) { $0.logIn(userID: "dave") }
        #expect(session.id != before)
        let regenerated = try #require(cookie.setValue)
        let reopened = try await sessions.request(cookie: regenerated).session
        #expect(reopened.userID == "dave")
        #expect(reopened.value.note == "x")
    }

    /// A rejection reads as its metric reason and what it means (it printed as `ConcordSessions.SessionRejection.malformed`).
    @Test func aRejectionSaysWhatItMeans() {
        for rejection in SessionRejection.allCases {
            #expect("\(rejection)".hasPrefix(rejection.rawValue + " ("), "\(rejection)")
        }
    }
}
