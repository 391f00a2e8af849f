import ConcordRedis
import ConcordSessions
import ConcordSessionsTesting
import Foundation
import Synchronization
import NIOCore
import NIOPosix

/// A real `redis-server` on a free loopback port in a temporary directory, for tests.
///
/// Use ``withServer(arguments:_:)`` so the server is stopped (and its directory removed) also when the test fails.
/// A missing `redis-server` binary is a test failure with the install command, never a skip.
final class RedisServerFixture: Sendable {
    let port: Int
    let directory: URL
    let arguments: [String]
    /// A configuration file given before the arguments (a sentinel needs one it can rewrite).
    let configFile: String?
    private let process: Mutex<Process?>

    var url: String { "redis://127.0.0.1:\(port)" }
    var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port) }

    private init(port: Int, directory: URL, arguments: [String], configFile: String?) {
        self.port = port
        self.directory = directory
        self.arguments = arguments
        self.configFile = configFile
        self.process = Mutex(nil)
    }

    /// Starts a server, runs `body`, and stops the server whatever happens.
    static func withServer<T>(
        arguments: [String] = [], configFile: String? = nil, _ body: (RedisServerFixture) async throws -> T
    ) async throws -> T {
        let server = try await start(arguments: arguments, configFile: configFile)
        do {
            let result = try await body(server)
            await server.stop(removeDirectory: true)
            return result
        } catch {
            await server.stop(removeDirectory: true)
            throw error
        }
    }

    static func start(arguments: [String] = [], configFile: String? = nil) async throws -> RedisServerFixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError: any Error = FixtureError("redis-server did not start")
        for _ in 0..<3 {  // a free port can be taken between probing and binding; try another
            // A cluster node also listens on port + 10000 (the cluster bus; with --tls-cluster the TLS port's).
            let isPlainClusterNode = arguments.contains("--cluster-enabled") && !arguments.contains("--tls-cluster")
            let port = try await isPlainClusterNode ? freeClusterPort() : LoopbackPort.free()
            try? FileManager.default.removeItem(at: directory.appendingPathComponent("nodes.conf"))
            let server = RedisServerFixture(port: port, directory: directory, arguments: arguments, configFile: configFile)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
                await server.stop(removeDirectory: false)
            }
        }
        try? FileManager.default.removeItem(at: directory)
        throw lastError
    }

    /// Kills the server and starts it again on the same port and directory (a crash and a restart).
    func restart() async throws {
        await stop(removeDirectory: false)
        try await launch()
    }

    /// Stops the server with SIGKILL and waits (at most 5 s) until it is gone. SIGKILL because a child started from
    /// a Swift concurrency thread inherits that thread's blocked signals, SIGTERM included; the server keeps no data
    /// worth a clean shutdown.
    ///
    /// It does not trust `Process.isRunning` (servers were seen outliving test runs): the pid is killed whenever it
    /// still runs in this fixture's directory, and waited for through /proc.
    func stop(removeDirectory: Bool = true) async {
        if let process = process.withLock({ $0.take() }) {
            let pid = process.processIdentifier
            if pid > 0, isOurs(pid) {
                kill(pid, SIGKILL)
                for _ in 0..<250 where isOurs(pid) { try? await Task.sleep(for: .milliseconds(20)) }
            }
        }
        if removeDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Whether `pid` is a live process (not a zombie) whose working directory is this fixture's directory.
    private func isOurs(_ pid: Int32) -> Bool {
        guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"),
            URL(fileURLWithPath: cwd).standardizedFileURL.path == directory.standardizedFileURL.path,
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    private func launch() async throws {
        let binary = try Self.binary("redis-server")
        let process = Process()
        process.executableURL = binary
        process.currentDirectoryURL = directory
        process.arguments =
            (configFile.map { [$0] } ?? []) + [
                "--port", String(port), "--bind", "127.0.0.1", "--dir", directory.path, "--save", "",
                "--appendonly", "no", "--logfile", directory.appendingPathComponent("redis-\(port).log").path,
                "--daemonize", "no",
            ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        InheritedDescriptors.markCloseOnExec()
        try process.run()
        self.process.withLock { $0 = process }
        try await waitUntilReady(process: process)
    }

    /// Polls with PING until the server answers (at most 10 s).
    private func waitUntilReady(process: Process) async throws {
        var configuration = RedisClientConfiguration(endpoints: [endpoint])
        configuration.connectTimeout = .milliseconds(500)
        let password = arguments.firstIndex(of: "--requirepass").map { arguments[$0 + 1] }
        configuration.endpoints[0].password = password
        for _ in 0..<200 {
            guard process.isRunning else {
                let log = (try? String(contentsOf: directory.appendingPathComponent("redis-\(port).log"), encoding: .utf8)) ?? ""
                throw FixtureError(
                    "redis-server on port \(port) exited (status \(process.terminationStatus)): \(log.suffix(400))")
            }
            if let connection = try? await RedisConnection.connect(to: configuration.endpoints[0], configuration: configuration) {
                defer { connection.close() }
                if (try? await connection.send(.ping())) == .simpleString("PONG") { return }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FixtureError("redis-server on port \(port) did not answer PING within 10 s")
    }

    static func binary(_ name: String) throws -> URL {
        try InstalledTool.url(name, installHint: "these tests need a real Redis (apt-get install -y redis-server; scripts/test does it)")
    }

    /// A free loopback port whose cluster bus port (+ 10000) is free too, and below the ephemeral range as well
    /// (the nodes connect to each other's bus ports).
    static func freeClusterPort() async throws -> Int {
        for _ in 0..<400 {
            let port = try LoopbackPort.free()
            if port + 10000 < LoopbackPort.belowEphemeralRange.upperBound, await isFree(port + 10000) { return port }
        }
        throw FixtureError("no free loopback port with a free cluster bus port")
    }

    /// Whether nobody listens on `port` right now (a bind succeeds).
    private static func isFree(_ port: Int) async -> Bool {
        guard let channel = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: port).get()
        else { return false }
        try? await channel.close()
        return true
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
