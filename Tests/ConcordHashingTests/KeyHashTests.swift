import Testing
@testable import ConcordHashing

@Suite(.timeLimit(.minutes(3))) struct KeyHashTests {
    /// Reference values from the xxHash reference implementation (python-xxhash), seed 0 and a non-zero seed.
    /// Lengths cover every code path: empty, 1–3 byte tail, 4-byte and 8-byte lanes, exactly one and more than one
    /// 32-byte stripe, and multi-byte UTF-8.
    static let golden: [(String, UInt64, UInt64)] = [
        ("", 0xef46db3751d8e999, 0xc4349fc93c010000),
        ("a", 0xd24ec4f1a98c6e5b, 0x9a7c6d2ea45568c9),
        ("abc", 0x44bc2cf5ad770999, 0x2ed0f59d6b43ac8b),
        ("concord", 0x0a1185fc1c107001, 0x7e35be053cf53a8a),
        ("session:0123456789abcdef", 0xd85a48085c16f1ae, 0xf5d6bf1f3dad6763),
        ("The quick brown fox jumps over the lazy dog", 0x0b242d361fda71bc, 0x7cfac66832f66b74),
        (String(repeating: "x", count: 31), 0x60dd0d01083b99f0, 0x4c66aeb653e8836a),
        (String(repeating: "y", count: 32), 0x64da1f1d3495ce66, 0xf861e47533e339f5),
        (String(repeating: "z", count: 37), 0x8fef2fa6ee2d279c, 0x7ee9a550588cae52),
        (
            "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz0123456789:;<=>?@ABCDEFGH",
            0xf4223e861b467448, 0xc255283b45713d1e
        ),
        ("naïve café 日本", 0x7191275c7fed44a0, 0xe0e2de354abc7985),
    ]

    @Test("XXH64 matches the reference implementation", arguments: golden.indices)
    func goldenVectors(index: Int) {
        let (input, seed0, seeded) = Self.golden[index]
        #expect(KeyHash.hash(input) == seed0, "xxh64(\(input.debugDescription))")
        #expect(KeyHash.hash(input, seed: 0x9E37_79B9_7F4A_7C15) == seeded)
        #expect(KeyHash.hash(bytes: Array(input.utf8)) == seed0)
    }

    @Test func substringsHashLikeStrings() {
        let text = "prefix-user-42-suffix"
        let slice = text.dropFirst(7).dropLast(7)
        #expect(KeyHash.hash(slice) == KeyHash.hash("user-42"))
    }

    @Test func mixIsABijectionOnSamples() {
        // SplitMix64's finaliser is invertible, so distinct inputs give distinct outputs.
        let outputs = Set((0..<10_000).map { KeyHash.mix(UInt64($0)) })
        #expect(outputs.count == 10_000)
    }
}
