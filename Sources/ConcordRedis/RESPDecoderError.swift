/// Why the bytes from a Redis server are not valid RESP (or exceed ``RESPDecoderConfiguration``).
/// The connection that produced them is closed: a RESP stream cannot be resynchronised.
public struct RESPDecoderError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case unknownType(UInt8)
        case invalidLine(String)
        case bulkTooLong(length: Int, limit: Int)
        case aggregateTooLong(length: Int, limit: Int)
        case nestingTooDeep(limit: Int)
        case lineTooLong(limit: Int)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    static func unknownType(_ byte: UInt8) -> Self { Self(.unknownType(byte)) }
    static func invalidLine(_ reason: String) -> Self { Self(.invalidLine(reason)) }
    static func bulkTooLong(length: Int, limit: Int) -> Self { Self(.bulkTooLong(length: length, limit: limit)) }
    static func aggregateTooLong(length: Int, limit: Int) -> Self { Self(.aggregateTooLong(length: length, limit: limit)) }
    static func nestingTooDeep(limit: Int) -> Self { Self(.nestingTooDeep(limit: limit)) }
    static func lineTooLong(limit: Int) -> Self { Self(.lineTooLong(limit: limit)) }

    public var isLimitExceeded: Bool {
        switch base {
        case .bulkTooLong, .aggregateTooLong, .nestingTooDeep, .lineTooLong: true
        case .unknownType, .invalidLine: false
        }
    }

    public var description: String {
        switch base {
        case .unknownType(let byte): "RESP: unknown type byte 0x\(String(byte, radix: 16))"
        case .invalidLine(let reason): "RESP: invalid line: \(reason)"
        case .bulkTooLong(let length, let limit): "RESP: bulk string of \(length) bytes exceeds the limit of \(limit)"
        case .aggregateTooLong(let length, let limit): "RESP: aggregate of \(length) elements exceeds the limit of \(limit)"
        case .nestingTooDeep(let limit): "RESP: aggregates nested deeper than \(limit) levels"
        case .lineTooLong(let limit): "RESP: line longer than \(limit) bytes"
        }
    }
}
