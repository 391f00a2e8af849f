import ConcordNetworking
import NIOCore
import NIOEmbedded
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import ConcordRedis

/// The pool's bookkeeping on its own: which failures back a slot off.
@Suite struct RedisConnectionPoolStateTests {
    private static let loop = EmbeddedEventLoop()

    /// Takes the next slot, which must be a connect; returns its slot and fails its promise (none is left pending).
    private static func connect(_ state: inout RedisConnectionPoolState) -> Int? {
        guard case .connect(let slot, let promise, _) = state.next(now: .now, makePromise: { loop.makePromise() }) else { return nil }
        promise.fail(RedisClientError.connectionClosed)
        return slot
    }

    /// A connect that failed in this process (out of descriptors) did not reach Redis: the slot may connect again at
    /// once. A failure at Redis backs the slot off, and commands fail fast meanwhile. Before 2026-12-03 both backed
    /// off, so a process out of descriptors went on failing store operations for the backoff after they were back.
    @Test func aFailureInThisProcessLeavesNoBackoffAndOneAtRedisDoes() throws {
        var state = RedisConnectionPoolState(size: 1, backoff: .seconds(30), maximumBackoff: .seconds(60))
        let slot = try #require(Self.connect(&state))
        state.failedLocally(slot: slot)
        #expect(Self.connect(&state) == slot, "connects again at once")

        _ = state.failed(slot: slot, error: .connectionFailed("refused"), now: .now)
        guard case .fail(let error) = state.next(now: .now, makePromise: { Self.loop.makePromise() }) else {
            Issue.record("a failure at Redis backs off")
            return
        }
        #expect(error.isBackingOff)
    }

    @Test func aLocalResourceFailureSaysItIsThisProcesss() throws {
        let local = try #require(LocalResourceFailure(IOError(errnoCode: EMFILE, reason: "connect")))
        let error = RedisClientError.localResources(local, endpoint: "127.0.0.1:6379")
        #expect(error.localResourceFailure?.errnoCode == EMFILE)
        #expect(error.description.contains("127.0.0.1:6379 failed in this process, not at Redis: out of file descriptors (EMFILE"), "\(error)")
        #expect(error.metricKind == .localResources)
        #expect(RedisClientError.connectionFailed("refused").localResourceFailure == nil)
    }
}
