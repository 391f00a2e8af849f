import Testing
@testable import ConcordHashing
