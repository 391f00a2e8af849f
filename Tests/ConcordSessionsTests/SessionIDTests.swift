@testable import ConcordSessions
import Testing

@Suite(.timeLimit(.minutes(3))) struct SessionIDTests {
    @Test func idsAreURLSafeAndLongEnough() {
        let id = SessionID.generate()
        #expect(id.utf8.count == SessionID.length)
        #expect(SessionID.byteCount * 8 >= 128)
        #expect(id.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(SessionID.isWellFormed(id))
    }

    @Test func idsDoNotRepeat() {
        let ids = Set((0..<10_000).map { _ in SessionID.generate() })
        #expect(ids.count == 10_000)
    }

    @Test(arguments: ["", "short", String(repeating: "a", count: 31), String(repeating: "a", count: 33),
                      String(repeating: "a", count: 31) + "=", String(repeating: "a", count: 31) + "/",
                      String(repeating: "é", count: 16), "../../../../../../../../etc/passwd"])
    func malformedIDsAreRefused(_ text: String) {
        #expect(!SessionID.isWellFormed(text))
    }

    @Test func base64URLRoundTripsEveryLength() throws {
        for count in 0..<70 {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(bytes)
            #expect(text.utf8.count == Base64URL.encodedLength(of: count))
            #expect(Base64URL.decode(text) == bytes)
        }
    }

    @Test(arguments: ["A", "AAAAA", "AB==", "A+B/", "AB", "AAB"])
    func base64URLRefusesBadText(_ text: String) {
        // Padding, standard-alphabet characters, impossible lengths and non-canonical trailing bits.
        #expect(Base64URL.decode(text) == nil)
    }
}
