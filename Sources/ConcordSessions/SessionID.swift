/// Session ids: 192 bits from the system CSPRNG, written as 32 characters of unpadded base64url.
///
/// `SystemRandomNumberGenerator` is documented as cryptographically secure on every platform Swift runs on
/// (`getrandom(2)` on Linux, `arc4random_buf` on Darwin). 192 bits is above OWASP's 128-bit minimum so that
/// guessing a live id stays hopeless even with millions of sessions.
public enum SessionID {
    /// Random bytes per id.
    public static let byteCount = 24
    /// Characters per id (`byteCount` bytes in base64url, no padding).
    public static let length = 32

    /// A new, unpredictable id.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: byteCount)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let word = generator.next() as UInt64
                withUnsafeBytes(of: word) { wordBytes in
                    let take = min(8, buffer.count - offset)
                    for index in 0..<take { buffer[offset + index] = wordBytes[index] }
                    offset += take
                }
            }
        }
        return Base64URL.encode(bytes)
    }

    /// Whether `text` has the shape of an id this library issues. Anything else is rejected before it reaches a
    /// store, so odd input never becomes a store key.
    public static func isWellFormed(_ text: some StringProtocol) -> Bool {
        // Runs on every request: scan the raw UTF-8 buffer when there is one (no index checks per byte).
        if let verdict = text.utf8.withContiguousStorageIfAvailable({ bytes in
            bytes.count == length && bytes.allSatisfy(Base64URL.isAlphabetByte)
        }) {
            return verdict
        }
        var count = 0
        for byte in text.utf8 {
            guard Base64URL.isAlphabetByte(byte) else { return false }
            count += 1
            if count > length { return false }
        }
        return count == length
    }
}
