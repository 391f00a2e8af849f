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
}
