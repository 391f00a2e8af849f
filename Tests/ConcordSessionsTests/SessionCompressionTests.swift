import ConcordSessionsTesting
@testable import ConcordSessions
import Testing

@Suite(.timeLimit(.minutes(3))) struct SessionCompressionTests {
    static let samples: [[UInt8]] = [
        [], [1], Array("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8),
        Array(#"{"cart":["book","book","lamp","book","chair"],"userName":"alice","theme":"dark"}"#.utf8),
        Array(String(repeating: #"{"sku":"A-1000","quantity":1},"#, count: 200).utf8),
        (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) },  // incompressible
        Array(repeating: 0, count: 70_000),  // long matches and offsets near 64 KiB
    ]

    @Test(arguments: samples)
    func roundTrips(_ input: [UInt8]) {
        let compressed = SessionCompression.compress(input)
        #expect(SessionCompression.decompress(compressed, maximumSize: 1 << 20) == input)
    }

    @Test func repetitiveJSONShrinks() {
        let json = Array(String(repeating: #"{"sku":"A-1000","quantity":1},"#, count: 100).utf8)
        #expect(SessionCompression.compress(json).count < json.count / 4)
    }

    @Test func refusesToExpandBeyondTheLimit() {
        let compressed = SessionCompression.compress(Array(repeating: 7, count: 10_000))
        #expect(SessionCompression.decompress(compressed, maximumSize: 9_999) == nil)
        #expect(SessionCompression.decompress(compressed, maximumSize: 10_000)?.count == 10_000)
    }

    @Test func garbageNeverCrashes() {
        var generator = SplitMix64(seed: 42)
        var accepted = 0
        for round in 0..<5_000 {
            let length = Int(generator.next() % 64)
            let garbage = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if let output = SessionCompression.decompress(garbage, maximumSize: 4096) {
                #expect(output.count <= 4096, "round \(round)")
                accepted += 1
            }
        }
        // Truncations of a valid stream are refused too.
        let valid = SessionCompression.compress(Array(String(repeating: "hello world ", count: 50).utf8))
        for cut in 1..<valid.count {
            let output = SessionCompression.decompress(valid[..<cut], maximumSize: 4096)
            #expect(output == nil || output!.count < 600)
        }
        #expect(accepted < 5_000)
    }
}

