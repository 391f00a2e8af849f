import NIOCore

/// Redis Cluster's key → slot function: CRC16-XMODEM of the key (or of its `{hash tag}`) modulo 16384.
public enum RedisClusterSlot {
    public static let count = 16384

    /// The slot of `key`. When the key has a non-empty `{…}` section, only that section is hashed, so keys
    /// sharing a tag (`session:{abc}:data`, `session:{abc}:meta`) live in one slot.
    public static func slot(forKey key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            return Int(crc16(bytes[(open + 1)..<close]) % UInt16(count))
        }
        return Int(crc16(bytes[...]) % UInt16(count))
    }

    public static func slot(forKey key: String) -> Int { slot(forKey: key.utf8) }
    public static func slot(forKey key: ByteBuffer) -> Int { slot(forKey: key.readableBytesView) }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte))]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
