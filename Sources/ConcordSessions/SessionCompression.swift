/// A small LZ77 compressor (the LZ4 block layout) for sealed-cookie payloads, in plain Swift so that
/// ConcordSessions keeps depending on swift-crypto only.
///
/// Session JSON repeats keys and values a lot, so even this simple greedy matcher halves typical payloads.
/// Decompression is defensive: it never reads or writes out of bounds and stops at `maximumSize`, so a hostile
/// payload (it would have to pass authentication first) cannot make it allocate without limit.
///
/// Sequence layout: `token` (high nibble literal count, low nibble match length − 4; 15 means more bytes
/// follow, each adding up to 255), literals, then (except for the last sequence) a 2-byte little-endian offset
/// and the extra match-length bytes.
enum SessionCompression {
    private static let minimumMatch = 4
    private static let hashBits = 12

    static func compress(_ input: [UInt8]) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(input.count / 2 + 16)
        var table = [Int32](repeating: -1, count: 1 << hashBits)
        var anchor = 0
        var index = 0
        let matchLimit = input.count - minimumMatch
        while index <= matchLimit {
            let sequence = read32(input, index)
            let hash = Int((sequence &* 2_654_435_761) >> (32 - UInt32(hashBits)))
            let candidate = Int(table[hash])
            table[hash] = Int32(index)
            guard candidate >= 0, index - candidate <= 0xFFFF, read32(input, candidate) == sequence else {
                index += 1
                continue
            }
            var length = minimumMatch
            while index + length < input.count, input[candidate + length] == input[index + length] { length += 1 }
            emit(literals: input[anchor..<index], matchLength: length, offset: index - candidate, into: &output)
            index += length
            anchor = index
        }
        emit(literals: input[anchor...], matchLength: nil, offset: 0, into: &output)
        return output
    }

    /// The decompressed bytes, or `nil` when `input` is not a valid stream or expands beyond `maximumSize`.
    static func decompress(_ input: some Collection<UInt8>, maximumSize: Int) -> [UInt8]? {
        let input = Array(input)
        var output = [UInt8]()
        var index = 0
        func readLength(_ initial: Int) -> Int? {
            var length = initial
            guard initial == 15 else { return length }
            while true {
                guard index < input.count else { return nil }
                let byte = input[index]
                index += 1
                length += Int(byte)
                guard length <= maximumSize else { return nil }
                if byte != 255 { return length }
            }
        }
        while index < input.count {
            let token = input[index]
            index += 1
            guard let literalCount = readLength(Int(token >> 4)), literalCount <= input.count - index,
                output.count + literalCount <= maximumSize
            else { return nil }
            output.append(contentsOf: input[index..<index + literalCount])
            index += literalCount
            if index == input.count { return output }  // the last sequence has literals only
            guard index + 2 <= input.count else { return nil }
            let offset = Int(input[index]) | Int(input[index + 1]) << 8
            index += 2
            guard let extra = readLength(Int(token & 0x0F)) else { return nil }
            let matchLength = extra + minimumMatch
            guard offset > 0, offset <= output.count, output.count + matchLength <= maximumSize else { return nil }
            let start = output.count - offset
            for position in 0..<matchLength { output.append(output[start + position]) }  // may overlap itself
        }
        return nil  // a stream always ends with a literal-only sequence
    }

    private static func read32(_ bytes: [UInt8], _ index: Int) -> UInt32 {
        UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
    }

    private static func emit(literals: ArraySlice<UInt8>, matchLength: Int?, offset: Int, into output: inout [UInt8]) {
        let literalCount = literals.count
        let matchExtra = (matchLength ?? minimumMatch) - minimumMatch
        output.append(UInt8(min(literalCount, 15)) << 4 | UInt8(min(matchExtra, 15)))
        appendLengthTail(literalCount, into: &output)
        output.append(contentsOf: literals)
        guard matchLength != nil else { return }
        output.append(UInt8(offset & 0xFF))
        output.append(UInt8(offset >> 8))
        appendLengthTail(matchExtra, into: &output)
    }

    private static func appendLengthTail(_ length: Int, into output: inout [UInt8]) {
        guard length >= 15 else { return }
        var rest = length - 15
        while rest >= 255 {
            output.append(255)
            rest -= 255
        }
        output.append(UInt8(rest))
    }
}
