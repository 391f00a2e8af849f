import ConcordSessions
import ConcordLab
import ConcordSessionsTesting
import ConcordTLSTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `concord app --nio-global-executor`, the real binary with a real `redis-server`: with every task on SwiftNIO's
/// loops, a login's session is written to Redis and read back by the next requests (each on a new connection), and
/// SIGTERM still ends the app gracefully. Also over TLS (`--store rediss://…`, Redis presenting test certificate a).
@Suite(.serialized, .timeLimit(.minutes(2))) struct NIOGlobalExecutorTests {
    @Test(arguments: [false, true]) func theAppKeepsSessionsInRedisOnNIOsLoops(tls: Bool) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-nio-executor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = ChildRegistry()
        let redisPort = try LoopbackPort.free()
        var storeURL = "redis://127.0.0.1:\(redisPort)"
        var tlsArguments: [String] = []
        if tls {
            let (chain, key) = try TestCertificate.a.write(to: directory)
            let tlsPort = try LoopbackPort.free()
            tlsArguments = ["--tls-port", String(tlsPort), "--tls-cert-file", chain, "--tls-key-file", key, "--tls-auth-clients", "no"]
            storeURL = "rediss://127.0.0.1:\(tlsPort)?caFile=\(chain)"
        }
        _ = try Self.spawnRedis(port: redisPort, directory: directory, registry: registry, arguments: tlsArguments)
        defer { registry.terminateAll() }
        try #require(await eventually(timeout: .seconds(20)) { (try? await Self.connect(redisPort)) != nil }, "redis-server never listened")

        let port = try LoopbackPort.free()
        let node = try LabChild.spawn(
            name: "app", executable: CommandLineTests.concordExecutable,
            arguments: ["app", "--strategy", "store", "--store", storeURL, "--port", String(port), "--nio-global-executor"],
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: directory.appendingPathComponent("app.log").path,
            registry: registry)
        let listening = await eventually(timeout: .seconds(30)) { node.logTail(50).contains("concord app listening") }
        try #require(listening, "the node never said it was listening:\n\(node.logTail())")
        #expect(node.logTail(50).contains("tasks run on SwiftNIO's event loops"), "\(node.logTail())")

        var jar = CookieJar()
        let login = try await Self.request(port, .POST, "/login", body: "user=ada&password=concord", jar: jar)
        #expect(login.status == 303 || login.status == 302, "login answered \(login.status)")
        jar.apply(setCookieHeaders: login.headers["set-cookie"])
        for item in ["teapot", "kettle"] {
            let added = try await Self.request(port, .POST, "/cart/add", body: "item=\(item)", jar: jar)
            #expect(added.status < 400, "cart/add answered \(added.status)")
        }
        let cart = try await Self.request(port, .GET, "/cart", jar: jar)
        #expect(cart.status == 200 && cart.bodyText.contains("teapot") && cart.bodyText.contains("kettle"), "\(cart.bodyText)")
        let profile = try await Self.request(port, .GET, "/profile", jar: jar)
        #expect(profile.status == 200 && profile.bodyText.contains("ada"))

        node.send(SIGTERM)
        #expect(await eventually(timeout: .seconds(20)) { !node.isRunning }, "the app did not stop on SIGTERM")
        #expect(node.exitCode == 0, "\(node.logTail())")
    }

    static func redisServer() throws -> String {
        try InstalledTool.url("redis-server", installHint: "apt-get install -y redis-server").path
    }

    /// A `redis-server` without persistence on `port` in `directory`, stopped by `registry`.
    static func spawnRedis(port: Int, directory: URL, registry: ChildRegistry, arguments: [String] = []) throws -> LabChild {
        try LabChild.spawn(
            name: "redis", executable: try redisServer(),
            arguments: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory.path]
                + arguments,
            logPath: directory.appendingPathComponent("redis.log").path, registry: registry)
    }

    static func connect(_ port: Int) async throws -> Bool {
        let connection = try await LabHTTPConnection.connect(port: port, sourceAddress: nil, timeout: .seconds(2))
        await connection.close()
        return true
    }

    static func request(_ port: Int, _ method: HTTPMethod, _ path: String, body: String? = nil, jar: CookieJar) async throws -> LabHTTPResponse {
        try await LabHTTPConnection.oneShot(method, port: port, path: path, body: body, cookie: jar.header, timeout: .seconds(10))
    }
}
