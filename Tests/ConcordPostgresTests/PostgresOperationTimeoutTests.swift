@testable import ConcordPostgres
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(3))) struct PostgresOperationTimeoutTests {
    /// An operation that ignores cancellation (as a query on a stopped server once did, for a minute) must not
    /// hold the caller past the timeout.
    @Test func theCallerIsAnsweredAtTheDeadlineEvenIfTheOperationIgnoresCancellation() async throws {
        let finished = Mutex(false)
        let started = ContinuousClock.now
        await #expect(throws: PostgresOperationTimeout.self) {
            try await withTimeout(.milliseconds(200)) {
                // Not cancellable: a detached sleep awaited through its value.
                await Task.detached { try? await Task.sleep(for: .seconds(60)) }.value
                finished.withLock { $0 = true }
                return 1
            }
        }
        // Far below the operation's 60 s, with room for a loaded CI machine (2.2 s was seen for the 0.2-s deadline,
        // 10 s while CPU-bound tests held both of the cooperative pool's threads).
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(finished.withLock { !$0 }, "the operation was still running when the caller got its answer")
    }

    @Test func resultsAndErrorsOfOperationsWithinTheDeadlinePassThrough() async throws {
        #expect(try await withTimeout(.seconds(5)) { 42 } == 42)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { try await withTimeout(.seconds(5)) { () async throws -> Int in throw Failure() } }
    }

    @Test func aCancelledCallerCancelsTheOperation() async throws {
        let sawCancellation = Mutex(false)
        let caller = Task {
            try await withTimeout(.seconds(10)) {
                do {
                    try await Task.sleep(for: .seconds(10))
                } catch {
                    sawCancellation.withLock { $0 = true }
                    throw error
                }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        #expect(sawCancellation.withLock { $0 })
    }
}
