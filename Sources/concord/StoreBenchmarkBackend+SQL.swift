import ConcordLab
import ConcordPostgres
import ConcordSQLite
import ConcordSessions
import Foundation

extension StoreBenchmarkBackend {
    /// ``MemorySessionStore``: the in-process baseline (no I/O at all).
    static let memory = StoreBenchmarkBackend(name: "memory") { _ in
        StoreBenchmarkTarget(store: MemorySessionStore(), peer: nil, stop: {})
    }

    /// ``SQLiteSessionStore`` on a file in a new temporary directory (default settings: WAL, 4 connections),
    /// or on the file given with `--url`.
    static let sqlite = StoreBenchmarkBackend(name: "sqlite") { options in
        let directory = options.url == nil ? FileManager.default.temporaryDirectory.appendingPathComponent("concord-bench-\(UUID().uuidString)").path : nil
        if let directory { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        // `sqlite:PATH`, as `concord app --store` takes it, or the bare path.
        let path = options.url.map { url in
            if case .sqlite(let path) = StoreURL(url) { return path }
            return url
        }
        let store = SQLiteSessionStore(configuration: .init(path: path ?? directory! + "/sessions.sqlite"))
        return StoreBenchmarkTarget(store: store, peer: nil, stop: {
            await store.close()
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
        })
    }

    /// ``PostgresSessionStore`` on a throwaway server (``LocalPostgresServer``, `synchronous_commit=off`, fsync on)
    /// or on the server given with `--postgres` / `--url`.
    static let postgres = StoreBenchmarkBackend(name: "postgres") { options in
        try await startPostgres(options, nearCache: false)
    }

    /// The same PostgreSQL behind a ``NearCacheSessionStore``; reports what the cache saved.
    static let postgresNearCache = StoreBenchmarkBackend(name: "postgres+near-cache") { options in
        try await startPostgres(options, nearCache: true)
    }

    private static func startPostgres(_ options: StoreBenchmarkOptions, nearCache: Bool) async throws -> StoreBenchmarkTarget {
        let url = options.postgresURL ?? options.url
        let server = url == nil ? try await LocalPostgresServer.start(settings: ["synchronous_commit": "off"]) : nil
        // pg_ctl daemonizes the server: adopt it, so that Ctrl-C during the benchmark stops it too.
        let postmaster = server?.postmasterPID
        if let postmaster { ChildRegistry.shared.adopt(postmaster, stopSignal: SIGINT) }
        var configuration = try server?.storeConfiguration(tableName: "bench_sessions")
            ?? PostgresSessionStoreConfiguration(url: url!)
        configuration.maximumConnections = 64
        // A benchmark on a busy machine measures throughput; an outage is not what it looks for.
        configuration.operationTimeout = .seconds(10)
        let postgres = PostgresSessionStore(configuration: configuration)
        let running = Task { try await postgres.run() }
        let stop: @Sendable () async -> Void = {
            running.cancel()
            _ = await running.result
            await server?.destroy()
            if let postmaster { ChildRegistry.shared.release(postmaster) }
        }
        guard nearCache else { return StoreBenchmarkTarget(store: postgres, peer: nil, stop: stop) }
        let cache = NearCacheSessionStore(backing: postgres)
        let report: @Sendable () -> String = {
            let statistics = cache.statistics
            return "  near cache: \(statistics.loads) loads, \(statistics.hits) hits, \(statistics.misses) misses, "
                + "\(statistics.staleEntries) stale; \(statistics.storeRoundTrips) store round trips for them "
                + "(plain store: \(statistics.loads)); payload fetches saved \(statistics.payloadFetchesSaved), "
                + "payload bytes saved \(statistics.payloadBytesSaved)"
        }
        return StoreBenchmarkTarget(store: cache, peer: nil, stop: stop, report: report)
    }
}
