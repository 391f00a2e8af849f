import ConcordSessionsTesting
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import ConcordReplication

@Suite(.timeLimit(.minutes(3))) struct ReplicationFrameDecoderTests {
    static let record = ReplicationRecord(
        id: "s-1", incarnation: 7, version: 3, timestamp: 99, origin: "node-a", expiresAt: 1_000,
        userID: "alice", payload: [1, 2, 3])
    static let tombstone = ReplicationRecord(
        id: "s-2", incarnation: 8, version: 0, timestamp: 100, origin: "node-b", expiresAt: 2_000, payload: nil)
    static let messages: [ReplicationMessage] = [
        .hello(nodeID: "node-a"),
        .provenHello(nodeID: "node-a", issuedAtMilliseconds: 1_764_700_000_000, proof: Array(repeating: 0xAB, count: 32)),
        .records([record, tombstone]),
        .records([]),
        .stateRequest(requestID: 42),
        .fetchRequest(requestID: 43, ids: ["s-1", "s-2", ""]),
        .userQuery(requestID: 45, userID: "alice"),
        .response(requestID: 44, ready: true, records: [record], isLast: false),
        .response(requestID: 44, ready: false, records: [], isLast: true),
    ]

    static func frame(_ message: ReplicationMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        ReplicationFrameEncoder.encode(message, into: &buffer)
        return buffer
    }

    @Test func everyMessageSurvivesByteByByteDelivery() throws {
        let pairs = Self.messages.map { (Self.frame($0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            ReplicationFrameDecoder(maximumFrameBytes: 1 << 20)
        }
    }

    @Test func severalFramesInOneRead() throws {
        var all = ByteBuffer()
        for message in Self.messages { ReplicationFrameEncoder.encode(message, into: &all) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(all, Self.messages)]) {
            ReplicationFrameDecoder(maximumFrameBytes: 1 << 20)
        }
    }

    @Test func oversizedFrameIsRefusedFromItsLengthAlone() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1 << 21))  // only the length arrives; the body never needs to be buffered
        let decoder = ReplicationFrameDecoder(maximumFrameBytes: 1 << 20)
        #expect(throws: ReplicationProtocolError.frameTooLarge(length: 1 << 21, limit: 1 << 20)) {
            _ = try decoder.decodeFrame(&buffer)
        }
    }

    @Test func wrongVersionUnknownTypeAndTrailingBytesAreRefused() {
        let decoder = ReplicationFrameDecoder(maximumFrameBytes: 1 << 20)
        var wrongVersion = Self.frame(.stateRequest(requestID: 1))
        wrongVersion.setInteger(UInt8(9), at: 4)
        #expect(throws: ReplicationProtocolError.unsupportedVersion(9)) { _ = try decoder.decodeFrame(&wrongVersion) }

        var unknownType = Self.frame(.stateRequest(requestID: 1))
        unknownType.setInteger(UInt8(200), at: 5)
        #expect(throws: ReplicationProtocolError.unknownMessageType(200)) { _ = try decoder.decodeFrame(&unknownType) }

        var trailing = ByteBuffer()
        trailing.writeInteger(UInt32(2 + 8 + 1))
        trailing.writeInteger(UInt8(1))
        trailing.writeInteger(UInt8(3))
        trailing.writeInteger(UInt64(1))
        trailing.writeInteger(UInt8(0))
        #expect(throws: ReplicationProtocolError.self) { _ = try decoder.decodeFrame(&trailing) }

        var tooShort = ByteBuffer()
        tooShort.writeInteger(UInt32(1))
        tooShort.writeInteger(UInt8(1))
        #expect(throws: ReplicationProtocolError.frameTooShort(length: 1)) { _ = try decoder.decodeFrame(&tooShort) }
    }

    @Test func recordCountLargerThanTheFrameIsRefusedBeforeAllocating() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(2 + 4))
        buffer.writeInteger(UInt8(1))
        buffer.writeInteger(UInt8(2))  // records
        buffer.writeInteger(UInt32.max)
        let decoder = ReplicationFrameDecoder(maximumFrameBytes: 1 << 20)
        #expect(throws: ReplicationProtocolError.self) { _ = try decoder.decodeFrame(&buffer) }
    }

    /// Random bytes and mangled real frames: the decoder either decodes, waits for more, or throws — never traps.
    @Test func garbageNeverCrashes() throws {
        var generator = SplitMix64(seed: 0xC0C0A)
        let valid = Self.messages.map { Array(Self.frame($0).readableBytesView) }
        var thrown = 0
        for round in 0..<3_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = valid[Int(generator.next() % UInt64(valid.count))]
                for _ in 0..<(1 + Int(generator.next() % 4)) where !bytes.isEmpty {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            let channel = EmbeddedChannel(
                handler: ByteToMessageHandler(
                    ReplicationFrameDecoder(maximumFrameBytes: 4096), maximumBufferSize: 4100))
            do {
                try channel.writeInbound(ByteBuffer(bytes: bytes))
                while let _ = try channel.readInbound(as: ReplicationMessage.self) {}
            } catch {
                thrown += 1
            }
            _ = try? channel.finish()
        }
        #expect(thrown > 100)
    }

    @Test func decoderErrorClosesTheConnectionsPipelineWithAnError() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(ReplicationFrameDecoder(maximumFrameBytes: 64), maximumBufferSize: 68))
        var huge = ByteBuffer()
        huge.writeInteger(UInt32(1_000_000))
        #expect(throws: ReplicationProtocolError.frameTooLarge(length: 1_000_000, limit: 64)) {
            try channel.writeInbound(huge)
        }
        _ = try? channel.finish()
    }
}

