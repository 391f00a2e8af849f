/// A session as it is persisted (in a store payload or inside a sealed cookie): metadata plus the app's value,
/// already encoded. The byte layout is versioned so records survive upgrades.
///
/// Layout (all integers big-endian):
/// `format (1) | createdAt ms (8) | lastAccessAt ms (8) | id length (1) | id | user length (2, 0xFFFF = none) |
/// user | value bytes (JSON of the app's value, to the end)`.
struct SessionRecord: Sendable, Hashable {
    static let format: UInt8 = 1

    var id: String
    var userID: String?
    /// When the session was created (or last regenerated), ms since 1970; the absolute timeout counts from here.
    var createdAt: Int64
    /// When the session was last written or touched, ms since 1970; the idle timeout counts from here.
    var lastAccessAt: Int64
    /// The app's value, encoded.
    var value: [UInt8]

    func encoded() -> [UInt8] {
        let idBytes = Array(id.utf8.prefix(255))
        let userBytes = userID.map { Array($0.utf8.prefix(0xFFFE)) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(20 + idBytes.count + (userBytes?.count ?? 0) + value.count)
        bytes.append(Self.format)
        bytes.appendBigEndian(UInt64(bitPattern: createdAt))
        bytes.appendBigEndian(UInt64(bitPattern: lastAccessAt))
        bytes.append(UInt8(idBytes.count))
        bytes.append(contentsOf: idBytes)
        if let userBytes {
            bytes.appendBigEndian(UInt16(userBytes.count))
            bytes.append(contentsOf: userBytes)
        } else {
            bytes.appendBigEndian(UInt16.max)
        }
        bytes.append(contentsOf: value)
        return bytes
    }

    /// The record in `bytes`, or `nil` if they are not a record of a known format.
    init?(decoding bytes: some Collection<UInt8>) {
        var reader = ByteReader(Array(bytes))
        guard reader.readByte() == Self.format,
            let created = reader.readUInt64(), let lastAccess = reader.readUInt64(),
            let idLength = reader.readByte(), let idBytes = reader.read(Int(idLength)),
            let id = String(validating: idBytes, as: UTF8.self),
            let userLength = reader.readUInt16()
        else { return nil }
        if userLength == UInt16.max {
            self.userID = nil
        } else {
            guard let userBytes = reader.read(Int(userLength)), let user = String(validating: userBytes, as: UTF8.self) else {
                return nil
            }
            self.userID = user
        }
        self.id = id
        self.createdAt = Int64(bitPattern: created)
        self.lastAccessAt = Int64(bitPattern: lastAccess)
        self.value = reader.readRest()
    }

    init(id: String, userID: String?, createdAt: Int64, lastAccessAt: Int64, value: [UInt8]) {
        self.id = id
        self.userID = userID
        self.createdAt = createdAt
        self.lastAccessAt = lastAccessAt
        self.value = value
    }
}

/// Reads fixed-size fields from bytes, returning `nil` instead of trapping when they run out.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func readByte() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func read(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func readUInt16() -> UInt16? {
        read(2).map { $0.reduce(0) { $0 << 8 | UInt16($1) } }
    }

    mutating func readUInt64() -> UInt64? {
        read(8).map { $0.reduce(0) { $0 << 8 | UInt64($1) } }
    }

    mutating func readRest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
