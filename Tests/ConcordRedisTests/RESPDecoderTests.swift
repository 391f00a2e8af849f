import ConcordSessionsTesting
import NIOCore
import NIOTestUtils
import Testing

@testable import ConcordRedis

@Suite(.timeLimit(.minutes(3))) struct RESPDecoderTests {
    static let samples: [RESPValue] = [
        .simpleString("OK"),
        .error("ERR unknown command"),
        .integer(-42),
        .integer(Int64.max),
        .bulkString(ByteBuffer(string: "hello\r\nworld")),
        .bulkString(ByteBuffer()),
        .null,
        .array([.integer(1), .bulkString(ByteBuffer(string: "two")), .array([.null, .simpleString("deep")])]),
        .array([]),
        .double(3.25),
        .double(.infinity),
        .boolean(true),
        .boolean(false),
        .bigNumber("3492890328409238509324850943850943825024385"),
        .verbatimString(format: "txt", text: ByteBuffer(string: "Some string")),
        .map([RESPMapEntry(key: .simpleString("first"), value: .integer(1))]),
        .set([.simpleString("a"), .integer(2)]),
        .push([.simpleString("invalidate"), .array([.bulkString(ByteBuffer(string: "key"))])]),
    ]

    private func encoded(_ values: [RESPValue]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for value in values { RESPEncoder.encode(value, into: &buffer) }
        return buffer
    }

    private func decodeAll(_ bytes: String, configuration: RESPDecoderConfiguration = .init()) throws -> [RESPValue] {
        var decoder = RESPDecoder(configuration: configuration)
        var buffer = ByteBuffer(string: bytes)
        var values: [RESPValue] = []
        while let value = try decoder.decode(buffer: &buffer) { values.append(value) }
        return values
    }

    @Test func verifierFeedsEveryValueByteByByte() throws {
        let pairs = Self.samples.map { (encoded([$0]), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs,
            decoderFactory: { RESPDecoder() })
    }

    @Test func decodesRESP2NullsAndWireForms() throws {
        let values = try decodeAll("$-1\r\n*-1\r\n+PONG\r\n:0\r\n$3\r\nfoo\r\n*2\r\n$1\r\na\r\n:7\r\n")
        #expect(
            values == [
                .null, .null, .simpleString("PONG"), .integer(0), .bulkString(ByteBuffer(string: "foo")),
                .array([.bulkString(ByteBuffer(string: "a")), .integer(7)]),
            ])
    }

    @Test func dropsAttributesAndKeepsTheValue() throws {
        #expect(try decodeAll("|1\r\n+key\r\n:1\r\n:5\r\n") == [.integer(5)])
    }

    @Test func waitsForIncompleteValuesWithoutConsuming() throws {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer(string: "*2\r\n$5\r\nhel")
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readerIndex == 0)
        buffer.writeString("lo\r\n:1\r\n")
        #expect(try decoder.decode(buffer: &buffer) == .array([.bulkString(ByteBuffer(string: "hello")), .integer(1)]))
        #expect(buffer.readableBytes == 0)
    }

    @Test func rejectsBulkLongerThanTheLimitBeforeItsBytesArrive() {
        let configuration = RESPDecoderConfiguration(maximumBulkLength: 10)
        #expect(throws: RESPDecoderError.bulkTooLong(length: 11, limit: 10)) {
            try decodeAll("$11\r\n", configuration: configuration)
        }
    }

    @Test func rejectsAggregatesLongerThanTheLimit() {
        let configuration = RESPDecoderConfiguration(maximumAggregateLength: 3)
        #expect(throws: RESPDecoderError.aggregateTooLong(length: 4, limit: 3)) {
            try decodeAll("*4\r\n", configuration: configuration)
        }
        #expect(throws: RESPDecoderError.aggregateTooLong(length: 4, limit: 3)) {
            try decodeAll("%4\r\n", configuration: configuration)
        }
    }

    @Test func rejectsNestingDeeperThanTheLimit() throws {
        let configuration = RESPDecoderConfiguration(maximumNestingDepth: 3)
        #expect(try decodeAll("*1\r\n*1\r\n*1\r\n:1\r\n", configuration: configuration).count == 1)
        #expect(throws: RESPDecoderError.nestingTooDeep(limit: 3)) {
            try decodeAll("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", configuration: configuration)
        }
    }

    @Test func rejectsLinesLongerThanTheLimit() {
        let configuration = RESPDecoderConfiguration(maximumLineLength: 8)
        #expect(throws: RESPDecoderError.lineTooLong(limit: 8)) {
            try decodeAll("+0123456789", configuration: configuration)
        }
    }

    @Test(arguments: ["?x\r\n", ":12a\r\n", "$3\r\nfooXY", "#x\r\n", ",abc\r\n", "+OK\rX", "$-2\r\n", ":\r\n", "_1\r\n",
        "=3\r\nabc\r\n", "(12x\r\n", ":99999999999999999999\r\n"])
    func rejectsMalformedInput(input: String) {
        #expect(throws: RESPDecoderError.self) { try decodeAll(input) }
    }

    /// Random bytes, and valid streams with random bytes flipped: the decoder returns values, asks for more, or
    /// throws ``RESPDecoderError``; it never crashes or loops.
    @Test func survivesGarbage() throws {
        var generator = SplitMix64(seed: 0x5EED)
        let valid = Array(encoded(Self.samples).readableBytesView)
        var rejected = 0
        for round in 0..<2_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = valid
                for _ in 0..<3 {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            var decoder = RESPDecoder(configuration: RESPDecoderConfiguration(maximumBulkLength: 1024))
            var buffer = ByteBuffer(bytes: bytes)
            do {
                var decoded = 0
                while try decoder.decode(buffer: &buffer) != nil {
                    decoded += 1
                    #expect(decoded <= bytes.count)
                }
            } catch is RESPDecoderError {
                rejected += 1
            }
        }
        #expect(rejected > 500)
    }

    @Test func encodesCommandsAsArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPEncoder.encode(RedisCommand.set("k", "v", expiration: .milliseconds(1500), condition: .ifAbsent), into: &buffer)
        #expect(String(buffer: buffer) == "*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$4\r\n1500\r\n$2\r\nNX\r\n")
    }

    /// The handler allocates a command's buffer once, from `encodedLength(of:)`: it must match what `encode` writes
    /// (empty arguments, lengths across digit boundaries, more than nine arguments).
    @Test(arguments: [0, 1, 9, 10, 99, 100, 1000, 100_000])
    func encodedLengthIsExact(size: Int) {
        let blob = RedisArgument([UInt8](repeating: 0x61, count: size))
        let commands = [
            RedisCommand.set("k", blob),
            RedisCommand("EVALSHA", ["0123456789012345678901234567890123456789", "1", "key", "", blob, "600000", blob]),
            RedisCommand("DEL", (0..<(size % 23 + 1)).map { RedisArgument("key-\($0)") }),
            RedisCommand("PING"),
        ]
        for command in commands {
            var buffer = ByteBuffer()
            RESPEncoder.encode(command, into: &buffer)
            #expect(RESPEncoder.encodedLength(of: command) == buffer.readableBytes, "\(command.name) with \(size)")
        }
    }
}

