import ConcordSessions
import Testing

/// One check of ``SessionStoreConformance`` against one store; failures are recorded at the caller's location.
struct ConformanceRun {
    typealias Check = SessionStoreConformance.Check

    let check: Check
    let options: SessionStoreConformance.Options
    let store: any SessionStore
    let location: SourceLocation

    func perform() async throws {
        switch check {
        case .missingRecord: try await missingRecord()
        case .roundTrip: try await roundTrip()
        case .binaryPayload: try await binaryPayload()
        case .versionsIncrement: try await versionsIncrement()
        case .conditionalSave: try await conditionalSave()
        case .delete: try await delete()
        case .touchKeepsRecord: try await touchKeepsRecord()
        case .expiry: try await expiry()
        case .touchExtendsLife: try await touchExtendsLife()
        case .userIndex: try await userIndex()
        case .deleteAllForUser: try await deleteAllForUser()
        case .concurrentUpdates: try await concurrentUpdates()
        case .concurrentCreates: try await concurrentCreates()
        case .tooLarge: try await tooLarge()
        }
    }

    // MARK: Checks

    private func missingRecord() async throws {
        let id = SessionID.generate()
        #expect(try await store.load(id: id) == nil, "\(check): load of an unknown id returned a record", sourceLocation: location)
        #expect(try await store.version(id: id) == nil, "\(check): version of an unknown id is not nil", sourceLocation: location)
        #expect(try await store.touch(id: id, ttl: options.longTTL) == false, "\(check): touch of an unknown id returned true", sourceLocation: location)
        try await store.delete(id: id)
        #expect(try await store.load(id: id) == nil, "\(check): delete of an unknown id created a record", sourceLocation: location)
        #expect(try await store.sessionIDs(forUser: "nobody-\(id)") == [], "\(check): an unknown user has sessions", sourceLocation: location)
    }

    private func roundTrip() async throws {
        let id = SessionID.generate()
        let first = try await store.save(record(id, [1, 2, 3], user: "alice"), ttl: options.longTTL, expectedVersion: nil)
        #expect(first == 1, "\(check): the first save returned version \(first), not 1", sourceLocation: location)
        let loaded = try await store.load(id: id)
        #expect(loaded == StoredSession(id: id, payload: [1, 2, 3], version: 1, userID: "alice"), "\(check): load returned \(String(describing: loaded)) after saving payload [1, 2, 3] for alice", sourceLocation: location)
        let second = try await store.save(record(id, [9], user: nil), ttl: options.longTTL, expectedVersion: nil)
        let reloaded = try await store.load(id: id)
        #expect(second == 2 && reloaded == StoredSession(id: id, payload: [9], version: 2, userID: nil), "\(check): re-saving did not replace payload and user: version \(second), record \(String(describing: reloaded))", sourceLocation: location)
    }

    private func binaryPayload() async throws {
        let large = min(options.largePayloadSize, options.maximumPayloadSize ?? .max)
        let payloads: [[UInt8]] = [
            Array(0...255), Array((0...255).reversed()), [], [0], Array(repeating: 0, count: 300),
            (0..<large).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) },
        ]
        for payload in payloads {
            let id = SessionID.generate()
            _ = try await store.save(record(id, payload), ttl: options.longTTL, expectedVersion: nil)
            let loaded = try await store.load(id: id)
            #expect(loaded?.payload == payload, "\(check): a \(payload.count)-byte payload came back as \(loaded.map { "\($0.payload.count) different bytes" } ?? "nothing")", sourceLocation: location)
        }
    }

    private func versionsIncrement() async throws {
        let id = SessionID.generate()
        var versions: [UInt64] = []
        for round in 0..<5 {
            versions.append(try await store.save(record(id, [UInt8(round)]), ttl: options.longTTL, expectedVersion: nil))
        }
        #expect(versions == [1, 2, 3, 4, 5], "\(check): unconditional saves returned versions \(versions)", sourceLocation: location)
        let loaded = try await store.load(id: id)
        #expect(loaded?.version == 5 && loaded?.payload == [4], "\(check): load after 5 saves returned \(String(describing: loaded))", sourceLocation: location)
    }

    private func conditionalSave() async throws {
        let id = SessionID.generate()
        #expect(try await store.save(record(id, [1]), ttl: options.longTTL, expectedVersion: 0) == 1, "\(check): creating with expectedVersion 0 did not return version 1", sourceLocation: location)
        await expectError(isConflict, "a conflict when creating an existing record with expectedVersion 0") {
            _ = try await store.save(record(id, [2]), ttl: options.longTTL, expectedVersion: 0)
        }
        #expect(try await store.save(record(id, [3]), ttl: options.longTTL, expectedVersion: 1) == 2, "\(check): saving with the current version 1 did not return version 2", sourceLocation: location)
        await expectError(isConflict, "a conflict when saving with the stale version 1") {
            _ = try await store.save(record(id, [4]), ttl: options.longTTL, expectedVersion: 1)
        }
        await expectError(isConflict, "a conflict when saving with a future version 7") {
            _ = try await store.save(record(id, [5]), ttl: options.longTTL, expectedVersion: 7)
        }
        let loaded = try await store.load(id: id)
        #expect(loaded?.payload == [3] && loaded?.version == 2, "\(check): a rejected save changed the record: \(String(describing: loaded))", sourceLocation: location)
        let missing = SessionID.generate()
        await expectError(isConflict, "a conflict when saving an absent record with expectedVersion 3") {
            _ = try await store.save(record(missing, [6]), ttl: options.longTTL, expectedVersion: 3)
        }
        #expect(try await store.load(id: missing) == nil, "\(check): a rejected save of an absent record created it", sourceLocation: location)
        #expect(try await store.save(record(id, [7]), ttl: options.longTTL, expectedVersion: nil) == 3, "\(check): an unconditional save after conditional ones did not return version 3", sourceLocation: location)
    }

    private func delete() async throws {
        let id = SessionID.generate()
        _ = try await store.save(record(id, [1], user: "dora"), ttl: options.longTTL, expectedVersion: nil)
        try await store.delete(id: id)
        #expect(try await store.load(id: id) == nil, "\(check): load after delete returned a record", sourceLocation: location)
        #expect(try await store.version(id: id) == nil, "\(check): version after delete is not nil", sourceLocation: location)
        #expect(try await store.touch(id: id, ttl: options.longTTL) == false, "\(check): touch after delete returned true", sourceLocation: location)
        #expect(try await store.sessionIDs(forUser: "dora").contains(id) == false, "\(check): a deleted session is still indexed", sourceLocation: location)
        try await store.delete(id: id)
        #expect(try await store.save(record(id, [2]), ttl: options.longTTL, expectedVersion: 0) == 1, "\(check): re-creating a deleted id did not start again at version 1", sourceLocation: location)
    }

    private func touchKeepsRecord() async throws {
        let id = SessionID.generate()
        _ = try await store.save(record(id, [4, 2], user: "erin"), ttl: options.longTTL, expectedVersion: nil)
        _ = try await store.save(record(id, [4, 2], user: "erin"), ttl: options.longTTL, expectedVersion: nil)
        #expect(try await store.touch(id: id, ttl: options.longTTL) == true, "\(check): touch of a live record returned false", sourceLocation: location)
        let loaded = try await store.load(id: id)
        #expect(loaded == StoredSession(id: id, payload: [4, 2], version: 2, userID: "erin"), "\(check): touch changed the record: \(String(describing: loaded))", sourceLocation: location)
        #expect(try await store.version(id: id) == 2, "\(check): version after touch is not 2", sourceLocation: location)
    }

    /// Runs `attempt` (which saves a record with the short TTL and checks it while it must still be alive) and
    /// expects its check to hold. An attempt that took longer than the TTL in real time proves nothing either way
    /// (a loaded machine paused the test), so it is repeated with a fresh record, up to three times.
    private func withinShortTTL(
        _ failure: String,
        _ attempt: () async throws -> (String, Bool)
    ) async throws -> String {
        var lastID = ""
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let (id, held) = try await attempt()
            lastID = id
            if ContinuousClock.now - started < options.shortTTL {
                #expect(held, "\(check): \(failure)", sourceLocation: location)
                return id
            }
        }
        Issue.record("\(check): three attempts each took longer than the \(options.shortTTL) TTL", sourceLocation: location)
        return lastID
    }

    private func expiry() async throws {
        let user = "frank-\(SessionID.generate())"
        let long = SessionID.generate()
        _ = try await store.save(record(long, [2], user: user), ttl: options.longTTL, expectedVersion: nil)
        let short = try await withinShortTTL("a record was gone before its TTL passed") { () async throws -> (String, Bool) in
            let short = SessionID.generate()
            _ = try await store.save(record(short, [1], user: user), ttl: options.shortTTL, expectedVersion: nil)
            return (short, try await store.load(id: short) != nil)
        }
        try await options.letTimePass(options.shortTTL + options.expiryMargin)
        #expect(try await store.load(id: short) == nil, "\(check): load returned a record after its TTL passed", sourceLocation: location)
        #expect(try await store.version(id: short) == nil, "\(check): version of an expired record is not nil", sourceLocation: location)
        #expect(try await store.touch(id: short, ttl: options.longTTL) == false, "\(check): touch revived an expired record", sourceLocation: location)
        #expect(try await store.sessionIDs(forUser: user) == [long], "\(check): the user index lists expired sessions", sourceLocation: location)
        #expect(try await store.load(id: long)?.payload == [2], "\(check): a long-lived record expired with a short one", sourceLocation: location)
        #expect(try await store.save(record(short, [3]), ttl: options.longTTL, expectedVersion: 0) == 1, "\(check): an expired id could not be created again with expectedVersion 0", sourceLocation: location)
    }

    private func touchExtendsLife() async throws {
        let id = try await withinShortTTL("touch of a live record returned false") { () async throws -> (String, Bool) in
            let id = SessionID.generate()
            _ = try await store.save(record(id, [7]), ttl: options.shortTTL, expectedVersion: nil)
            return (id, try await store.touch(id: id, ttl: options.longTTL))
        }
        try await options.letTimePass(options.shortTTL + options.expiryMargin)
        let loaded = try await store.load(id: id)
        #expect(loaded?.payload == [7] && loaded?.version == 1, "\(check): touch did not extend the life of the record", sourceLocation: location)
    }

    private func userIndex() async throws {
        let alice = "alice-\(SessionID.generate())"
        let bob = "bob@example.com/\(SessionID.generate())"
        let (a1, a2, b1, anonymous) = (SessionID.generate(), SessionID.generate(), SessionID.generate(), SessionID.generate())
        for (id, user) in [(a1, alice), (a2, alice), (b1, bob)] {
            _ = try await store.save(record(id, [1], user: user), ttl: options.longTTL, expectedVersion: nil)
        }
        _ = try await store.save(record(anonymous, [1]), ttl: options.longTTL, expectedVersion: nil)
        #expect(try await store.sessionIDs(forUser: alice).sorted() == [a1, a2].sorted(), "\(check): alice's sessions are wrong", sourceLocation: location)
        _ = try await store.save(record(a2, [2], user: bob), ttl: options.longTTL, expectedVersion: nil)
        #expect(try await store.sessionIDs(forUser: alice) == [a1], "\(check): a session moved to bob is still listed for alice", sourceLocation: location)
        #expect(try await store.sessionIDs(forUser: bob).sorted() == [a2, b1].sorted(), "\(check): a session moved to bob is not listed for bob", sourceLocation: location)
        _ = try await store.save(record(a1, [3], user: nil), ttl: options.longTTL, expectedVersion: nil)
        #expect(try await store.sessionIDs(forUser: alice) == [], "\(check): a session saved without a user is still listed", sourceLocation: location)
        try await store.delete(id: b1)
        #expect(try await store.sessionIDs(forUser: bob) == [a2], "\(check): a deleted session is still listed", sourceLocation: location)
    }

    private func deleteAllForUser() async throws {
        let grace = "grace-\(SessionID.generate())"
        let other = "heidi-\(SessionID.generate())"
        let graces = (0..<3).map { _ in SessionID.generate() }
        let others = (0..<2).map { _ in SessionID.generate() }
        for id in graces { _ = try await store.save(record(id, [1], user: grace), ttl: options.longTTL, expectedVersion: nil) }
        for id in others { _ = try await store.save(record(id, [2], user: other), ttl: options.longTTL, expectedVersion: nil) }
        let deleted = try await store.deleteAll(forUser: grace)
        #expect(deleted == 3, "\(check): deleteAll(forUser:) reported \(deleted) deletions, not 3", sourceLocation: location)
        for id in graces { #expect(try await store.load(id: id) == nil, "\(check): a session survived deleteAll(forUser:)", sourceLocation: location) }
        for id in others { #expect(try await store.load(id: id) != nil, "\(check): deleteAll(forUser:) deleted another user's session", sourceLocation: location) }
        #expect(try await store.sessionIDs(forUser: grace) == [], "\(check): sessions are listed after deleteAll(forUser:)", sourceLocation: location)
        #expect(try await store.deleteAll(forUser: grace) == 0, "\(check): a second deleteAll(forUser:) deleted something", sourceLocation: location)
    }

    private func concurrentUpdates() async throws {
        let id = SessionID.generate()
        _ = try await store.save(record(id, []), ttl: options.longTTL, expectedVersion: 0)
        let writers = options.concurrentWriters
        let store = self.store
        let ttl = options.longTTL
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    // Read, append this writer's number, write back at the version read; retry on conflict.
                    for _ in 0..<(writers * 20) {
                        guard let current = try await store.load(id: id) else { return false }
                        await Task.yield()  // let other writers read the same version: conflicts must happen
                        let payload = current.payload + [UInt8(writer >> 8), UInt8(writer & 0xFF)]
                        do {
                            _ = try await store.save(StoredSession(id: id, payload: payload), ttl: ttl, expectedVersion: current.version)
                            return true
                        } catch let error as SessionStoreError where error.isConflict {
                            await Task.yield()
                        }
                    }
                    return false
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.allSatisfy { $0 }, "\(check): \(outcomes.filter { !$0 }.count) writers gave up after repeated conflicts", sourceLocation: location)
        let final = try await store.load(id: id)
        let written = stride(from: 0, to: final?.payload.count ?? 0, by: 2).map { index in
            Int(final!.payload[index]) << 8 | Int(final!.payload[index + 1])
        }
        #expect(written.sorted() == Array(0..<writers), "\(check): after \(writers) concurrent versioned appends the record holds \(written.count) of them: \(written.sorted())", sourceLocation: location)
        #expect(final?.version == UInt64(writers + 1), "\(check): the final version is \(String(describing: final?.version)), not \(writers + 1)", sourceLocation: location)
    }

    private func concurrentCreates() async throws {
        let id = SessionID.generate()
        let store = self.store
        let ttl = options.longTTL
        let results = try await withThrowingTaskGroup(of: Result<UInt64, SessionStoreError>.self) { group in
            for writer in 0..<options.concurrentWriters {
                group.addTask {
                    do {
                        return .success(try await store.save(StoredSession(id: id, payload: [UInt8(writer & 0xFF)]), ttl: ttl, expectedVersion: 0))
                    } catch let error as SessionStoreError {
                        return .failure(error)
                    }
                }
            }
            return try await group.reduce(into: [Result<UInt64, SessionStoreError>]()) { $0.append($1) }
        }
        let wins = results.compactMap { try? $0.get() }
        let conflicts = results.filter { if case .failure(let error) = $0 { error.isConflict } else { false } }
        #expect(wins == [1], "\(check): concurrent creates of one id: \(wins.count) succeeded (versions \(wins)), expected exactly one", sourceLocation: location)
        #expect(conflicts.count == options.concurrentWriters - 1, "\(check): the losing creates did not all report a conflict", sourceLocation: location)
    }

    private func tooLarge() async throws {
        guard let limit = options.maximumPayloadSize else {
            Issue.record(
                "\(check): the store declares no maximum payload size; pass Options(maximumPayloadSize:) so the suite can check that bigger payloads are refused",
                sourceLocation: location)
            return
        }
        let id = SessionID.generate()
        let atLimit = [UInt8](repeating: 0x5A, count: limit)
        #expect(try await store.save(record(id, atLimit), ttl: options.longTTL, expectedVersion: nil) == 1, "\(check): a payload of exactly the limit (\(limit) bytes) was not stored", sourceLocation: location)
        await expectError({ $0.isTooLarge }, "a tooLarge error for a payload of \(limit + 1) bytes") {
            _ = try await store.save(record(id, atLimit + [1]), ttl: options.longTTL, expectedVersion: nil)
        }
        let loaded = try await store.load(id: id)
        #expect(loaded?.payload.count == limit && loaded?.version == 1, "\(check): a refused oversized save changed the record", sourceLocation: location)
    }

    // MARK: Helpers

    private func record(_ id: String, _ payload: [UInt8], user: String? = nil) -> StoredSession {
        StoredSession(id: id, payload: payload, userID: user)
    }

    private func isConflict(_ error: SessionStoreError) -> Bool { error.isConflict }

    private func expectError(
        _ matches: (SessionStoreError) -> Bool,
        _ expected: String,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            Issue.record("\(check): expected \(expected), but the call succeeded", sourceLocation: location)
        } catch let error as SessionStoreError {
            if !matches(error) { Issue.record("\(check): expected \(expected), got \(error)", sourceLocation: location) }
        } catch {
            Issue.record("\(check): expected \(expected), got a \(type(of: error)) (stores throw only SessionStoreError): \(error)",
                         sourceLocation: location)
        }
    }
}
