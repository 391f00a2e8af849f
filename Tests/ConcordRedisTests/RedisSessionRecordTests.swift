import ConcordSessions
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

    /// A record that is not one (short, non-digits, a version beyond `UInt64`, a user id longer than the record)
    /// is a typed `corrupt` error, never a trap or a wrong session.
    @Test(arguments: [
        "",
        "0000000000000000000100000",  // header only: a valid empty session (checked below), not an error
        "000000000000000000010000",  // one byte short
        "0000000000000000000x00000payload",
        "+000000000000000000100000payload",
        "99999999999999999999" + "00000payload",  // > UInt64.max
        "0000000000000000000100009abc",  // user id longer than the rest
        "000000000000000000010000-payload",
    ])
    func malformedRecordsAreCorrupt(text: String) {
        let result = Result { () throws(SessionStoreError) in try RedisSessionRecord.decode(id: "s", record: ByteBuffer(string: text)) }
        if text == "0000000000000000000100000" {
            #expect((try? result.get()) == StoredSession(id: "s", payload: [], version: 1, userID: nil))
        } else if case .failure(let error) = result {
            #expect(error.isCorrupt, "\(text): \(error)")
        } else {
            Issue.record("\(text) decoded as \(String(describing: try? result.get()))")
        }
    }

    @Test func theLargestVersionDecodes() throws {
        let record = RedisSessionRecord.record(version: UInt64.max, userID: "u", payload: [9])
        #expect(try RedisSessionRecord.decode(id: "s", record: record) == StoredSession(id: "s", payload: [9], version: UInt64.max, userID: "u"))
    }
}
