import NIOCore

/// Writes RESP: commands (arrays of bulk strings, what a client sends) and, for tests and tools, any RESP3 value.
public enum RESPEncoder {
    /// Appends `command` as a RESP array of bulk strings.
    public static func encode(_ command: RedisCommand, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        writeDecimal(command.arguments.count, into: &buffer)
        for argument in command.arguments {
            var argument = argument
            buffer.writeInteger(UInt8(ascii: "$"))
            writeDecimal(argument.readableBytes, into: &buffer)
            buffer.writeBuffer(&argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// The exact number of bytes ``encode(_:into:)-(RedisCommand,_)`` writes for `command`, so the buffer is
    /// allocated once.
    public static func encodedLength(of command: RedisCommand) -> Int {
        var length = 1 + decimalLength(command.arguments.count) + 2
        for argument in command.arguments {
            let size = argument.readableBytes
            length += 1 + decimalLength(size) + 2 + size + 2
        }
        return length
    }

    private static func decimalLength(_ value: Int) -> Int {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    /// Appends any value in its RESP3 form (RESP2 forms for null bulk strings are not produced).
    public static func encode(_ value: RESPValue, into buffer: inout ByteBuffer) {
        switch value {
        case .simpleString(let text): writeLine("+", text, into: &buffer)
        case .error(let text): writeLine("-", text, into: &buffer)
        case .integer(let number): writeLine(":", String(number), into: &buffer)
        case .bulkString(let bytes): writeBlob("$", bytes, into: &buffer)
        case .null: buffer.writeStaticString("_\r\n")
        case .double(let number):
            let text = number.isNaN ? "nan" : number == .infinity ? "inf" : number == -.infinity ? "-inf" : "\(number)"
            writeLine(",", text, into: &buffer)
        case .boolean(let flag): writeLine("#", flag ? "t" : "f", into: &buffer)
        case .bigNumber(let text): writeLine("(", text, into: &buffer)
        case .verbatimString(let format, let text):
            var blob = ByteBuffer(string: "\(format):")
            blob.writeImmutableBuffer(text)
            writeBlob("=", blob, into: &buffer)
        case .array(let values): writeAggregate("*", values, into: &buffer)
        case .set(let values): writeAggregate("~", values, into: &buffer)
        case .push(let values): writeAggregate(">", values, into: &buffer)
        case .map(let entries):
            writeLine("%", String(entries.count), into: &buffer)
            for entry in entries {
                encode(entry.key, into: &buffer)
                encode(entry.value, into: &buffer)
            }
        }
    }

    private static func writeLine(_ type: Character, _ text: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.asciiValue!)
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    private static func writeBlob(_ type: Character, _ bytes: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.asciiValue!)
        writeDecimal(bytes.readableBytes, into: &buffer)
        buffer.writeImmutableBuffer(bytes)
        buffer.writeStaticString("\r\n")
    }

    private static func writeAggregate(_ type: Character, _ values: [RESPValue], into buffer: inout ByteBuffer) {
        writeLine(type, String(values.count), into: &buffer)
        for value in values { encode(value, into: &buffer) }
    }

    /// A non-negative count followed by CRLF, without going through `String`.
    private static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        if value < 10 {
            buffer.writeInteger(UInt8(ascii: "0") + UInt8(value))
        } else {
            buffer.writeString(String(value))
        }
        buffer.writeStaticString("\r\n")
    }
}
