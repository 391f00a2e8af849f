import NIOCore
import Testing

@testable import ConcordRedis

@Suite(.timeLimit(.minutes(3))) struct RedisSessionRecordTests {
    /// The replace script's arguments, built as slices of one buffer, are exactly the separately built prefix, TTL
    /// and next record (with and without a user, empty and large payloads).
    @Test(arguments: [nil, "alice", "ü-user"], [0, 1, 300, 70_000])
    func replaceArgumentsMatchTheSeparateParts(userID: String?, payloadSize: Int) {
        let payload = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let arguments = RedisSessionRecord.replaceArguments(
            expectedVersion: 41, userID: userID, milliseconds: 600_000, payload: payload)
        #expect(arguments.count == 3)
        #expect(arguments[0].buffer == RedisSessionRecord.prefix(version: 41, userID: userID))
        #expect(String(buffer: arguments[1].buffer) == "600000")
        #expect(arguments[2].buffer == RedisSessionRecord.record(version: 42, userID: userID, payload: payload))
        let decoded = try? RedisSessionRecord.decode(id: "s", record: arguments[2].buffer)
        #expect(decoded?.version == 42 && decoded?.userID == userID && decoded?.payload == payload)
    }
}
