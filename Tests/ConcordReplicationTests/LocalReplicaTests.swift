import ConcordSessions
import Synchronization
import Testing

@testable import ConcordReplication

/// A wall clock the test moves by hand.
final class ManualWallClock: Sendable {
    private let now: Mutex<UInt64>
    init(_ start: UInt64 = 1_700_000_000_000) { now = Mutex(start) }
    func advance(milliseconds: UInt64) { now.withLock { $0 += milliseconds } }
    var clock: SessionWallClock { SessionWallClock { Int64(self.now.withLock { $0 }) } }
}

@Suite(.timeLimit(.minutes(3))) struct LocalReplicaTests {
    func replica(_ id: String, _ clock: ManualWallClock) -> LocalReplica {
        LocalReplica(nodeID: id, wallClock: clock.clock, maximumSessionBytes: 1024, tombstoneLifetime: .seconds(60))
    }

    @Test func concurrentWritesConvergeWhateverTheDeliveryOrder() throws {
        let clock = ManualWallClock()
        let a = replica("a", clock)
        let b = replica("b", clock)
        let c = replica("c", clock)
        let created = try a.save(StoredSession(id: "s", payload: [0]), ttl: .seconds(60), expectedVersion: 0)
        b.apply([created])
        c.apply([created])
        // a and b both write version 2 at the same wall-clock millisecond; c deletes nothing but touches.
        let fromA = try a.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: 1)
        let fromB = try b.save(StoredSession(id: "s", payload: [2]), ttl: .seconds(60), expectedVersion: 1)
        let fromC = try #require(c.touch(id: "s", ttl: .seconds(90)))
        #expect(fromA.version == 2 && fromB.version == 2)
        let writes = [fromA, fromB, fromC]
        var results: Set<[UInt8]> = []
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            let observer = replica("o\(order)", clock)
            observer.apply([created])
            for index in order { observer.apply([writes[index]]) }
            results.insert(try #require(observer.load(id: "s")).payload)
        }
        #expect(results.count == 1)
        // The winner is the larger (version, timestamp, node id): both have version 2; on equal timestamps "b" > "a".
        let winner = fromA.supersedes(fromB) ? fromA : fromB
        #expect(results.first == winner.payload)
    }

    @Test func deleteBeatsConcurrentUpdateAndLosesToLaterRecreation() throws {
        let clock = ManualWallClock()
        let a = replica("a", clock)
        let b = replica("b", clock)
        let created = try a.save(StoredSession(id: "s", payload: [0]), ttl: .seconds(60), expectedVersion: nil)
        b.apply([created])
        let update = try b.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: 1)
        clock.advance(milliseconds: 1)
        let tombstone = a.delete(id: "s")
        b.apply([tombstone])
        a.apply([update])
        #expect(a.load(id: "s") == nil)
        #expect(b.load(id: "s") == nil)

        clock.advance(milliseconds: 1)
        let recreated = try b.save(StoredSession(id: "s", payload: [9]), ttl: .seconds(60), expectedVersion: 0)
        #expect(recreated.version == 1)
        a.apply([recreated])
        #expect(a.load(id: "s")?.payload == [9])
    }

    @Test func expectedVersionIsCheckedAgainstTheLocalCopy() throws {
        let clock = ManualWallClock()
        let a = replica("a", clock)
        _ = try a.save(StoredSession(id: "s", payload: [0]), ttl: .seconds(60), expectedVersion: 0)
        #expect(throws: SessionStoreError.conflict(expected: 0, actual: 1)) {
            _ = try a.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: 0)
        }
        #expect(throws: SessionStoreError.tooLarge(size: 2000, limit: 1024)) {
            _ = try a.save(StoredSession(id: "t", payload: Array(repeating: 0, count: 2000)), ttl: .seconds(1), expectedVersion: nil)
        }
    }

    @Test func sessionsAndTombstonesExpireAndAreSwept() throws {
        let clock = ManualWallClock()
        let a = replica("a", clock)
        _ = try a.save(StoredSession(id: "s", payload: [0], userID: "u"), ttl: .seconds(2), expectedVersion: nil)
        _ = try a.save(StoredSession(id: "t", payload: [0]), ttl: .seconds(120), expectedVersion: nil)
        _ = a.delete(id: "t")
        #expect(a.liveIDs(forUser: "u") == ["s"])
        clock.advance(milliseconds: 2_001)
        #expect(a.load(id: "s") == nil)
        #expect(a.liveIDs(forUser: "u") == [])
        #expect(a.touch(id: "s", ttl: .seconds(10)) == nil)
        #expect(a.sweep() == 1)  // the session; the tombstone lives 60 s
        clock.advance(milliseconds: 60_000)
        #expect(a.sweep() == 1)
        #expect(a.count == 0)
    }

    @Test func hybridLogicalClockNeverGoesBackwards() {
        var clock = HybridLogicalClock()
        let first = clock.now(wallMilliseconds: 1_000)
        let second = clock.now(wallMilliseconds: 1_000)
        clock.observe(5_000 << 16)
        let third = clock.now(wallMilliseconds: 900)
        #expect(first < second && second < third)
        #expect(third > 5_000 << 16)
        #expect(HybridLogicalClock.physical(of: clock.now(wallMilliseconds: 9_000)) == 9_000)
    }
}

@Suite(.timeLimit(.minutes(3))) struct PeerQueueTests {
    func record(_ id: String, version: UInt64, bytes: Int = 10) -> ReplicationRecord {
        ReplicationRecord(
            id: id, incarnation: 1, version: version, timestamp: version, origin: "a", expiresAt: 1,
            payload: Array(repeating: 0, count: bytes))
    }

    @Test func coalescesBySessionKeepingTheNewestWrite() {
        var queue = PeerQueue(capacity: 2)
        #expect(queue.enqueue(record("s", version: 2)) == .queued)
        #expect(queue.enqueue(record("s", version: 1)) == .queued)
        #expect(queue.enqueue(record("t", version: 1)) == .queued)
        #expect(queue.enqueue(record("u", version: 1)) == .full)
        #expect(queue.enqueue(record("s", version: 3)) == .queued)  // merging needs no room
        let batch = queue.takeBatch(maximumRecords: 10, maximumBytes: 1 << 20)
        #expect(batch.count == 2)
        #expect(batch.first { $0.id == "s" }?.version == 3)
        #expect(queue.isEmpty)
    }

    @Test func batchesRespectRecordAndByteLimits() {
        var queue = PeerQueue(capacity: 100)
        for index in 0..<10 { _ = queue.enqueue(record("s\(index)", version: 1, bytes: 100)) }
        #expect(queue.takeBatch(maximumRecords: 3, maximumBytes: 1 << 20).count == 3)
        #expect(queue.takeBatch(maximumRecords: 100, maximumBytes: 300).count == 2)
        #expect(queue.takeBatch(maximumRecords: 100, maximumBytes: 1).count == 1)  // one record always fits
        #expect(queue.count == 4)
    }

    @Test func overflowTurnsIntoOneFullPush() {
        var queue = PeerQueue(capacity: 1)
        _ = queue.enqueue(record("s", version: 1))
        queue.overflow()
        #expect(!queue.isEmpty)
        let first = queue.takeFullPush()
        let second = queue.takeFullPush()
        #expect(first && !second)
        #expect(queue.isEmpty)
    }

    @Test func requeueKeepsNewerWrites() {
        var queue = PeerQueue(capacity: 10)
        _ = queue.enqueue(record("s", version: 5))
        queue.requeue([record("s", version: 4), record("t", version: 1)])
        let batch = queue.takeBatch(maximumRecords: 10, maximumBytes: 1 << 20)
        #expect(Set(batch.map { "\($0.id)\($0.version)" }) == ["s5", "t1"])
    }
}
