import ConcordSessions
import ConcordLab
import ConcordSessionsTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `concord app --store redis://… --store-read-wait SECONDS`, the real binary: a request that comes while Redis is
/// down waits for it (Redis is started again on the same port a second later) instead of getting 503; without the
/// flag the same request gets 503.
@Suite(.serialized, .timeLimit(.minutes(2))) struct StoreReadWaitTests {
    /// A store that does not answer when the app starts is named at once (it was first heard of at the first
    /// session request); the app still starts.
    @Test func aStoreDownAtStartIsLogged() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-store-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = ChildRegistry()
        defer { registry.terminateAll() }
        let node = try LabChild.spawn(
            name: "app", executable: CommandLineTests.concordExecutable,
            arguments: ["app", "--strategy", "store", "--store", "redis://127.0.0.1:\(try LoopbackPort.free())", "--port", String(try LoopbackPort.free())],
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: directory.appendingPathComponent("app.log").path,
            registry: registry)
        #expect(await eventually(timeout: .seconds(30)) { node.logTail(50).contains("the session store does not answer at start") }, "\(node.logTail())")
        #expect(node.isRunning)
    }

    @Test(arguments: [false, true]) func aRequestDuringARedisOutage(waits: Bool) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-read-wait-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = ChildRegistry()
        defer { registry.terminateAll() }
        let redisPort = try LoopbackPort.free()
        func startRedis() throws -> LabChild {
            try NIOGlobalExecutorTests.spawnRedis(port: redisPort, directory: directory, registry: registry)
        }
        let redis = try startRedis()
        try #require(await eventually(timeout: .seconds(20)) { (try? await NIOGlobalExecutorTests.connect(redisPort)) != nil })

        let port = try LoopbackPort.free()
        let node = try LabChild.spawn(
            name: "app", executable: CommandLineTests.concordExecutable,
            arguments: ["app", "--strategy", "store", "--store", "redis://127.0.0.1:\(redisPort)", "--port", String(port)]
                + (waits ? ["--store-read-wait", "20"] : []),
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: directory.appendingPathComponent("app.log").path,
            registry: registry)
        try #require(await eventually(timeout: .seconds(30)) { node.logTail(50).contains("concord app listening") }, "\(node.logTail())")
        var jar = CookieJar()
        #expect(!node.logTail(50).contains("does not answer at start"), "Redis was up: \(node.logTail())")
        let login = try await NIOGlobalExecutorTests.request(port, .POST, "/login", body: "user=ada&password=concord", jar: jar)
        jar.apply(setCookieHeaders: login.headers["set-cookie"])

        redis.send(SIGKILL)
        _ = await redis.waitForExit()
        let cookies = jar
        let during = Task {
            let started = ContinuousClock.now
            let response = try await NIOGlobalExecutorTests.request(port, .GET, "/cart", jar: cookies)
            return (response, ContinuousClock.now - started)
        }
        if !waits {
            // Redis stays down until the answer: 503, however slow a loaded machine is.
            let (response, _) = try await during.value
            #expect(response.status == 503, "answered \(response.status)")
            return
        }
        try await Task.sleep(for: .seconds(1))
        _ = try startRedis()
        let (response, waited) = try await during.value
        // Redis came back empty (no persistence): the session is gone, but the request was answered, not refused.
        #expect(response.status != 503, "answered \(response.status) after \(waited)")
        #expect(waited >= .milliseconds(900), "answered after \(waited): it did not wait for Redis")
        let metrics = try await NIOGlobalExecutorTests.request(port, .GET, "/metrics", jar: CookieJar())
        #expect(metrics.bodyText.contains("concord_app_store_read_retries_total{outcome=\"recovered\"} 1"), "\(metrics.bodyText)")
    }
}
