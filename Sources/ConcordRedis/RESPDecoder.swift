import NIOCore

/// Decodes RESP2 and RESP3 values from a Redis byte stream, enforcing ``RESPDecoderConfiguration``.
///
/// The decoder parses a whole top-level value or nothing: while a value is incomplete it returns `.needMoreData`
/// and leaves the buffer alone, so the handler's `maximumBufferSize` is the only place bytes accumulate.
/// Limits are checked as soon as a length is read, before its bytes arrive. RESP3 attributes (`|`) are
/// parsed and dropped; the value they annotate is delivered.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    public let configuration: RESPDecoderConfiguration

    public init(configuration: RESPDecoderConfiguration = RESPDecoderConfiguration()) {
        self.configuration = configuration
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        var cursor = buffer
        guard let value = try parseValue(&cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor.readerIndex)
        return value
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    // MARK: Parsing (on a copy of the buffer; `nil` means "incomplete")

    private func parseValue(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return try readLine(&buffer).map { .simpleString(String(buffer: $0)) }
        case UInt8(ascii: "-"):
            return try readLine(&buffer).map { .error(String(buffer: $0)) }
        case UInt8(ascii: ":"):
            return try readLine(&buffer).map { .integer(try Self.integer($0)) }
        case UInt8(ascii: "$"):
            return try readBlob(&buffer).map { $0.map(RESPValue.bulkString) ?? .null }
        case UInt8(ascii: "!"):
            return try readBlob(&buffer).map { .error($0.map { String(buffer: $0) } ?? "") }
        case UInt8(ascii: "="):
            guard let blob = try readBlob(&buffer) else { return nil }
            guard var text = blob, text.readableBytes >= 4,
                text.getInteger(at: text.readerIndex + 3, as: UInt8.self) == UInt8(ascii: ":")
            else { throw RESPDecoderError.invalidLine("verbatim string without a format prefix") }
            let format = text.readString(length: 3) ?? ""
            text.moveReaderIndex(forwardBy: 1)
            return .verbatimString(format: format, text: text)
        case UInt8(ascii: "_"):
            guard let line = try readLine(&buffer) else { return nil }
            guard line.readableBytes == 0 else { throw RESPDecoderError.invalidLine("null with a body") }
            return .null
        case UInt8(ascii: "#"):
            guard let line = try readLine(&buffer) else { return nil }
            switch String(buffer: line) {
            case "t": return .boolean(true)
            case "f": return .boolean(false)
            default: throw RESPDecoderError.invalidLine("boolean is neither t nor f")
            }
        case UInt8(ascii: ","):
            guard let line = try readLine(&buffer) else { return nil }
            let text = String(buffer: line)
            let value: Double? =
                switch text {
                case "inf": .infinity
                case "-inf": -.infinity
                case "nan": .nan
                default: Double(text)
                }
            guard let value else { throw RESPDecoderError.invalidLine("invalid double") }
            return .double(value)
        case UInt8(ascii: "("):
            guard let line = try readLine(&buffer) else { return nil }
            let text = String(buffer: line)
            let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw RESPDecoderError.invalidLine("invalid big number")
            }
            return .bigNumber(text)
        case UInt8(ascii: "*"):
            return try readAggregate(&buffer, depth: depth, nullable: true).map { $0.map(RESPValue.array) ?? .null }
        case UInt8(ascii: "~"):
            return try readAggregate(&buffer, depth: depth, nullable: false).map { .set($0 ?? []) }
        case UInt8(ascii: ">"):
            return try readAggregate(&buffer, depth: depth, nullable: false).map { .push($0 ?? []) }
        case UInt8(ascii: "%"):
            return try readMap(&buffer, depth: depth).map(RESPValue.map)
        case UInt8(ascii: "|"):
            // An attribute annotates the value that follows; Concord has no use for it.
            guard try readMap(&buffer, depth: depth) != nil else { return nil }
            return try parseValue(&buffer, depth: depth)
        default:
            throw RESPDecoderError.unknownType(type)
        }
    }

    /// The bytes up to the next CRLF (consumed), or `nil` when the line is incomplete.
    private func readLine(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        let view = buffer.readableBytesView
        guard let carriageReturn = view.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > configuration.maximumLineLength {
                throw RESPDecoderError.lineTooLong(limit: configuration.maximumLineLength)
            }
            return nil
        }
        let length = carriageReturn - view.startIndex
        guard length <= configuration.maximumLineLength else {
            throw RESPDecoderError.lineTooLong(limit: configuration.maximumLineLength)
        }
        guard length + 2 <= view.count else { return nil }
        guard view[carriageReturn + 1] == UInt8(ascii: "\n") else {
            throw RESPDecoderError.invalidLine("CR not followed by LF")
        }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// A length line: `-1` (null) or a non-negative count.
    private func readLength(_ buffer: inout ByteBuffer) throws -> Int?? {
        guard let line = try readLine(&buffer) else { return nil }
        let value = try Self.integer(line)
        if value == -1 { return .some(nil) }
        guard value >= 0, value <= Int64(Int32.max) else { throw RESPDecoderError.invalidLine("invalid length \(value)") }
        return .some(Int(value))
    }

    /// A length-prefixed string (`$`, `!`, `=`): `.some(nil)` for the RESP2 null bulk string.
    private func readBlob(_ buffer: inout ByteBuffer) throws -> ByteBuffer?? {
        guard let length = try readLength(&buffer) else { return nil }
        guard let length else { return .some(nil) }
        guard length <= configuration.maximumBulkLength else {
            throw RESPDecoderError.bulkTooLong(length: length, limit: configuration.maximumBulkLength)
        }
        guard buffer.readableBytes >= length + 2 else { return nil }
        let body = buffer.readSlice(length: length)!
        guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
            throw RESPDecoderError.invalidLine("bulk string not terminated by CRLF")
        }
        return .some(body)
    }

    private func readAggregate(_ buffer: inout ByteBuffer, depth: Int, nullable: Bool) throws -> [RESPValue]?? {
        guard let count = try readLength(&buffer) else { return nil }
        guard let count else {
            guard nullable else { throw RESPDecoderError.invalidLine("null length for a RESP3 aggregate") }
            return .some(nil)
        }
        try checkAggregate(count: count, depth: depth)
        var values: [RESPValue] = []
        values.reserveCapacity(min(count, 1024))
        for _ in 0..<count {
            guard let value = try parseValue(&buffer, depth: depth + 1) else { return nil }
            values.append(value)
        }
        return .some(values)
    }

    private func readMap(_ buffer: inout ByteBuffer, depth: Int) throws -> [RESPMapEntry]? {
        guard let count = try readLength(&buffer) else { return nil }
        guard let count else { throw RESPDecoderError.invalidLine("null length for a map") }
        try checkAggregate(count: count, depth: depth)
        var entries: [RESPMapEntry] = []
        entries.reserveCapacity(min(count, 1024))
        for _ in 0..<count {
            guard let key = try parseValue(&buffer, depth: depth + 1),
                let value = try parseValue(&buffer, depth: depth + 1)
            else { return nil }
            entries.append(RESPMapEntry(key: key, value: value))
        }
        return entries
    }

    private func checkAggregate(count: Int, depth: Int) throws {
        guard count <= configuration.maximumAggregateLength else {
            throw RESPDecoderError.aggregateTooLong(length: count, limit: configuration.maximumAggregateLength)
        }
        guard depth < configuration.maximumNestingDepth else {
            throw RESPDecoderError.nestingTooDeep(limit: configuration.maximumNestingDepth)
        }
    }

    private static func integer(_ line: ByteBuffer) throws -> Int64 {
        var value: Int64 = 0
        var negative = false
        var sawDigit = false
        for (offset, byte) in line.readableBytesView.enumerated() {
            if offset == 0, byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+") {
                negative = byte == UInt8(ascii: "-")
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw RESPDecoderError.invalidLine("invalid integer")
            }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw RESPDecoderError.invalidLine("integer overflows 64 bits") }
            value = sum
            sawDigit = true
        }
        guard sawDigit else { throw RESPDecoderError.invalidLine("empty integer") }
        return negative ? -value : value
    }
}
