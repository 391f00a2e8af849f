import ConcordSessions
import Testing

@Suite struct SessionStoreErrorTests {
    /// What an error carries can be read without parsing its description (only `is…` flags were public).
    @Test func anErrorsDetailsAreReadable() {
        #expect(SessionStoreError.unavailable("WRONGPASS invalid password").reason == "WRONGPASS invalid password")
        #expect(SessionStoreError.corrupt("bad header").reason == "bad header")
        #expect(SessionStoreError.conflict(expected: 3, actual: 5).reason == nil)
        #expect(SessionStoreError.conflict(expected: 3, actual: 5).conflictingVersions.map { $0.expected == 3 && $0.actual == 5 } == true)
        #expect(SessionStoreError.conflict(expected: 3, actual: nil).conflictingVersions.map { $0.actual == nil } == true)
        #expect(SessionStoreError.tooLarge(size: 10, limit: 4).sizeAndLimit.map { $0 == (10, 4) } == true)
        #expect(SessionStoreError.unavailable("x").conflictingVersions == nil && SessionStoreError.unavailable("x").sizeAndLimit == nil)
    }

    /// Keys from configuration get a reason, not a nil or a trap (`SessionKeyRing` trapped on a repeated id).
    @Test func aKeyFromConfigurationSaysWhatIsWrong() throws {
        let good = SessionKeyRing.Key.generate(id: 1).base64
        #expect(try SessionKeyRing.Key(id: 1, parsing: good + "\n").base64 == good, "a trailing newline (a secret file) is fine")
        let notBase64 = #expect(throws: SessionError.self) { try SessionKeyRing.Key(id: 2, parsing: "not base64 at all!") }
        #expect(notBase64.map { "\($0)".contains("not base64") } == true)
        let short = #expect(throws: SessionError.self) { try SessionKeyRing.Key(id: 3, parsing: "c2hvcnQ=") }
        #expect(short.map { "\($0)".contains("is 5 bytes; it must be 32") } == true, "\(String(describing: short))")
        #expect(SessionKeyRing.Key(id: 3, base64: "c2hvcnQ=") == nil)
        let twice = #expect(throws: SessionError.self) {
            try SessionKeyRing(checking: .generate(id: 1), previous: [.generate(id: 2), .generate(id: 1)])
        }
        #expect(twice.map { "\($0)".contains("id 1 is listed twice") } == true)
        #expect(try SessionKeyRing(checking: .generate(id: 2), previous: [.generate(id: 1)]).keyIDs == [1, 2])
    }
}
