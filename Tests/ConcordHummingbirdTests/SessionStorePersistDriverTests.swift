import ConcordHummingbird
import ConcordSessions
import ConcordSessionsTesting
import Hummingbird
import Logging
import ServiceLifecycle
import Testing

@Suite(.timeLimit(.minutes(3))) struct SessionStorePersistDriverTests {
    struct Profile: Codable, Sendable, Equatable {
        var name: String
        var visits: Int
    }

    let clock = ManualClock()
    let driver: SessionStorePersistDriver

    init() {
        driver = SessionStorePersistDriver(store: MemorySessionStore(clock: clock), defaultTTL: .seconds(60))
    }

    @Test func setGetAndRemove() async throws {
        try await driver.set(key: "k", value: Profile(name: "ann", visits: 1), expires: nil)
        #expect(try await driver.get(key: "k", as: Profile.self) == Profile(name: "ann", visits: 1))
        try await driver.set(key: "k", value: Profile(name: "ann", visits: 2), expires: .seconds(5))
        #expect(try await driver.get(key: "k", as: Profile.self)?.visits == 2)
        try await driver.remove(key: "k")
        #expect(try await driver.get(key: "k", as: Profile.self) == nil)
    }

    @Test func createRefusesAnExistingKey() async throws {
        try await driver.create(key: "k", value: Profile(name: "bo", visits: 0), expires: nil)
        await #expect(throws: PersistError.duplicate) {
            try await driver.create(key: "k", value: Profile(name: "mallory", visits: 0), expires: nil)
        }
        #expect(try await driver.get(key: "k", as: Profile.self)?.name == "bo")
    }

    @Test func readingAsAnotherTypeIsAnInvalidConversion() async throws {
        try await driver.set(key: "k", value: "just a string", expires: nil)
        await #expect(throws: PersistError.invalidConversion) { _ = try await driver.get(key: "k", as: Profile.self) }
    }

    @Test func expiryFollowsTheGivenOrDefaultTTL() async throws {
        try await driver.set(key: "short", value: 1, expires: .seconds(5))
        try await driver.set(key: "default", value: 2, expires: nil)
        clock.advance(by: .seconds(6))
        #expect(try await driver.get(key: "short", as: Int.self) == nil)
        #expect(try await driver.get(key: "default", as: Int.self) == 2)
        clock.advance(by: .seconds(60))
        #expect(try await driver.get(key: "default", as: Int.self) == nil)
    }

    @Test func theSweepServiceStopsOnGracefulShutdown() async throws {
        let store = MemorySessionStore(configuration: .init(sweepInterval: .seconds(1)), clock: clock)
        _ = try await store.save(StoredSession(id: SessionID.generate(), payload: []), ttl: .milliseconds(500), expectedVersion: nil)
        let group = ServiceGroup(services: [MemorySessionStoreService(store: store)], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Bounded polls (30 s each, reached only on failure).
            var deadline = ContinuousClock.now.advanced(by: .seconds(30))
            while clock.sleeperCount == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
            clock.advance(by: .seconds(1))
            deadline = ContinuousClock.now.advanced(by: .seconds(30))
            while store.statistics.sweeps == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
            #expect(store.statistics.sweeps == 1)
            #expect(store.statistics.sessions == 0)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()  // returns only if the service stopped
        }
    }
}
