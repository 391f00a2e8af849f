/// Unpadded base64url (RFC 4648 §5): the cookie-safe text form of ids and sealed cookies.
///
/// Hand-written so ConcordSessions needs nothing beyond the standard library and swift-crypto; decoding rejects
/// anything outside the alphabet and impossible lengths instead of guessing.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func isAlphabetByte(_ byte: UInt8) -> Bool {
        decodeTable[Int(byte)] != 0xFF
    }

    /// The encoded length of `count` bytes.
    static func encodedLength(of count: Int) -> Int {
        (count / 3) * 4 + [0, 2, 3][count % 3]
    }

    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        return String(unsafeUninitializedCapacity: encodedLength(of: input.count)) { output in
            var out = 0
            var index = 0
            while index + 3 <= input.count {
                let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                output[out] = alphabet[Int(value >> 18 & 63)]
                output[out + 1] = alphabet[Int(value >> 12 & 63)]
                output[out + 2] = alphabet[Int(value >> 6 & 63)]
                output[out + 3] = alphabet[Int(value & 63)]
                out += 4
                index += 3
            }
            switch input.count - index {
            case 1:
                let value = UInt32(input[index]) << 16
                output[out] = alphabet[Int(value >> 18 & 63)]
                output[out + 1] = alphabet[Int(value >> 12 & 63)]
                out += 2
            case 2:
                let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
                output[out] = alphabet[Int(value >> 18 & 63)]
                output[out + 1] = alphabet[Int(value >> 12 & 63)]
                output[out + 2] = alphabet[Int(value >> 6 & 63)]
                out += 3
            default:
                break
            }
            return out
        }
    }

    /// The bytes of `text`, or `nil` if it is not unpadded base64url (wrong character, impossible length,
    /// or non-zero trailing bits, so each byte string has exactly one accepted spelling).
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var result: [UInt8]? = nil
        var text = String(text)
        text.withUTF8 { utf8 in
            let remainder = utf8.count % 4
            guard remainder != 1 else { return }
            var output = [UInt8]()
            output.reserveCapacity(utf8.count / 4 * 3 + 2)
            var index = 0
            while index + 4 <= utf8.count {
                let a = decodeTable[Int(utf8[index])], b = decodeTable[Int(utf8[index + 1])]
                let c = decodeTable[Int(utf8[index + 2])], d = decodeTable[Int(utf8[index + 3])]
                guard a != 0xFF, b != 0xFF, c != 0xFF, d != 0xFF else { return }
                let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                output.append(UInt8(value >> 16 & 0xFF))
                output.append(UInt8(value >> 8 & 0xFF))
                output.append(UInt8(value & 0xFF))
                index += 4
            }
            if remainder == 2 {
                let a = decodeTable[Int(utf8[index])], b = decodeTable[Int(utf8[index + 1])]
                guard a != 0xFF, b != 0xFF, b & 0x0F == 0 else { return }
                output.append(a << 2 | b >> 4)
            } else if remainder == 3 {
                let a = decodeTable[Int(utf8[index])], b = decodeTable[Int(utf8[index + 1])]
                let c = decodeTable[Int(utf8[index + 2])]
                guard a != 0xFF, b != 0xFF, c != 0xFF, c & 0x03 == 0 else { return }
                let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6
                output.append(UInt8(value >> 16 & 0xFF))
                output.append(UInt8(value >> 8 & 0xFF))
            }
            result = output
        }
        return result
    }
}
