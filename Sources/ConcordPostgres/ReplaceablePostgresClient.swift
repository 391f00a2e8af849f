import PostgresNIO
import Synchronization

/// The store's connection pool, which a fresh one can replace. postgres-nio's pool waits longer and longer between
/// reconnect attempts while the server is down — 100 ms × 1.25ⁿ up to 60 s, fixed in its `PoolStateMachine` — so
/// after an outage of a few minutes it could take up to a minute to notice that PostgreSQL is back. The store's
/// probe connects on its own meanwhile and, once that works, swaps in a fresh pool (``replace()``), which connects
/// at once; the old one is shut down.
///
/// ``run()`` runs the current pool and each replacement (each pool needs its `run()` running for its lifetime).
final class ReplaceablePostgresClient: Sendable {
    private let make: @Sendable () -> PostgresClient
    private let current: Mutex<PostgresClient>
    private let replacements: AsyncStream<PostgresClient>
    private let replacementsContinuation: AsyncStream<PostgresClient>.Continuation
    private let replaced = Atomic<Int>(0)

    init(_ make: @escaping @Sendable () -> PostgresClient) {
        self.make = make
        current = Mutex(make())
        (replacements, replacementsContinuation) = AsyncStream.makeStream(of: PostgresClient.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The pool statements use now.
    var client: PostgresClient { current.withLock { $0 } }

    /// How many times a fresh pool replaced the current one.
    var replacementCount: Int { replaced.load(ordering: .relaxed) }

    /// Starts a fresh pool; statements go to it as soon as ``run()`` runs it, and the current one is shut down.
    func replace() {
        replacementsContinuation.yield(make())
    }

    /// Runs the pools until cancelled. Call once.
    func run() async {
        await withDiscardingTaskGroup { group in
            var retireCurrent = Self.start(client, in: &group)
            for await fresh in replacements {
                let retireFresh = Self.start(fresh, in: &group)
                current.withLock { $0 = fresh }
                replaced.add(1, ordering: .relaxed)
                // (A statement that got the old pool just before the swap fails as unavailable, like any other
                // during the outage.)
                retireCurrent.finish()
                retireCurrent = retireFresh
            }
            group.cancelAll()
        }
    }

    /// Runs `client` in a child task of `group` until the returned continuation is finished (or the group is
    /// cancelled): cancelling a pool's `run()` shuts it down.
    private static func start(_ client: PostgresClient, in group: inout DiscardingTaskGroup) -> AsyncStream<Void>.Continuation {
        let (retired, retire) = AsyncStream.makeStream(of: Void.self)
        group.addTask {
            await withDiscardingTaskGroup { pool in
                pool.addTask { await client.run() }
                for await _ in retired {}
                pool.cancelAll()
            }
        }
        return retire
    }
}
