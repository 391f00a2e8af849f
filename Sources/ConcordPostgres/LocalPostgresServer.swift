import ConcordSessions
import Foundation
import NIOCore
import NIOPosix

/// A throwaway PostgreSQL server on a free loopback port, in its own temporary directory: what the tests, the
/// store benchmark and the lab start instead of needing an installed, running database.
///
/// `initdb` creates the cluster (trust authentication, so no password), `pg_ctl` starts it listening on
/// 127.0.0.1 only with its Unix socket inside the directory, and ``destroy()`` stops it and deletes
/// everything. PostgreSQL refuses to run as root, so as root the commands run as the `postgres` user
/// (`runuser`), which owns the directory.
public final class LocalPostgresServer: Sendable {
    /// Server settings (`-c name=value`) that trade durability for speed: for tests only.
    public static let fastUnsafeSettings: [String: String] = [
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    ]

    /// The directory holding the cluster (`data/`), the server log and the socket.
    public let directory: String
    public let port: Int
    public let binDirectory: String
    private let settings: [String: String]
    private let runsAsPostgresUser: Bool

    /// Where the server binaries are looked for: `$CONCORD_PG_BIN`, else `/usr/lib/postgresql/15/bin`.
    public static var defaultBinDirectory: String {
        ProcessInfo.processInfo.environment["CONCORD_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
    }

    /// Settings for a ``PostgresSessionStore`` talking to this server.
    /// Timeouts are generous (10 s): this server shares a small machine with the test suite or benchmark that
    /// started it, and a slow answer there is load, not an outage.
    public func storeConfiguration(tableName: String = "concord_sessions") -> PostgresSessionStoreConfiguration {
        PostgresSessionStoreConfiguration(
            host: "127.0.0.1", port: port, tls: .disable, tableName: tableName,
            connectTimeout: .seconds(10), operationTimeout: .seconds(10)
        )
    }

    /// The server's URL (user `postgres`, no password).
    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable" }

    private init(directory: String, port: Int, binDirectory: String, settings: [String: String], runsAsPostgresUser: Bool) {
        self.directory = directory
        self.port = port
        self.binDirectory = binDirectory
        self.settings = settings
        self.runsAsPostgresUser = runsAsPostgresUser
    }

    /// Creates a cluster in a new temporary directory and starts it.
    /// - Parameters:
    ///   - binDirectory: where `initdb` and `pg_ctl` are (default ``defaultBinDirectory``).
    ///   - settings: extra server settings, e.g. ``fastUnsafeSettings``.
    /// - Throws: ``LocalPostgresServerError`` naming what is missing or what failed (with the server log).
    public static func start(
        binDirectory: String = defaultBinDirectory,
        settings: [String: String] = [:]
    ) async throws -> LocalPostgresServer {
        guard FileManager.default.isExecutableFile(atPath: binDirectory + "/initdb"),
            FileManager.default.isExecutableFile(atPath: binDirectory + "/pg_ctl")
        else {
            throw LocalPostgresServerError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found in \(binDirectory): install them "
                    + "(apt-get install -y postgresql-15) or set CONCORD_PG_BIN to their directory")
        }
        var template = Array("/tmp/concord-pg-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw LocalPostgresServerError("cannot create a temporary directory: errno \(errno)")
        }
        let directory = String(cString: created)
        let runsAsPostgresUser = getuid() == 0
        if runsAsPostgresUser {
            guard let user = getpwnam("postgres"), chown(directory, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                try? FileManager.default.removeItem(atPath: directory)
                throw LocalPostgresServerError("running as root needs a `postgres` user to own \(directory)")
            }
        }
        // The port is found free, released, then bound by PostgreSQL: another starter may take it in between,
        // so a start that finds its port taken tries another one.
        var attempt = 0
        while true {
            attempt += 1
            guard let port = try? LoopbackPort.free() else {
                try? FileManager.default.removeItem(atPath: directory)
                throw LocalPostgresServerError("could not find a free loopback port")
            }
            let server = LocalPostgresServer(
                directory: directory, port: port, binDirectory: binDirectory,
                settings: settings, runsAsPostgresUser: runsAsPostgresUser)
            do {
                if attempt == 1 {
                    try await server.run(
                        "initdb", ["-D", server.dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                                   "--no-sync", "--no-instructions"])
                }
                try await server.startAgain()
                return server
            } catch let error as LocalPostgresServerError where attempt < 5 && error.description.contains("already in use") {
                continue
            } catch {
                await server.destroy()
                throw error
            }
        }
    }

    /// Starts a server, runs `body`, then stops the server and deletes it, also when `body` throws.
    public static func withServer<T: Sendable>(
        settings: [String: String] = fastUnsafeSettings,
        _ body: (LocalPostgresServer) async throws -> T
    ) async throws -> T {
        let server = try await start(settings: settings)
        do {
            let result = try await body(server)
            await server.destroy()
            return result
        } catch {
            await server.destroy()
            throw error
        }
    }

    /// Starts the server (again) on the same port, waiting until it accepts connections.
    public func startAgain() async throws {
        var options = ["-p \(port)", "-k \(directory)", "-c listen_addresses=127.0.0.1", "-c shared_buffers=16MB"]
        options += settings.sorted { $0.key < $1.key }.map { "-c \($0.key)=\($0.value)" }
        do {
            try await run("pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "30", "-o", options.joined(separator: " "), "start"])
        } catch {
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            throw LocalPostgresServerError("\(error)\nserver log:\n\(log.suffix(2000))")
        }
    }

    /// Stops the server (fast shutdown: open connections are closed), keeping its data for ``startAgain()``.
    public func stop() async throws {
        try await run("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"])
    }

    /// Stops the server if it runs and deletes its directory. Never throws: it is the cleanup path.
    public func destroy() async {
        if FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid") {
            try? await run("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "-t", "30", "stop"])
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The running server's process id (the postmaster's, from `postmaster.pid`), or `nil` when it is not running.
    public var postmasterPID: pid_t? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first, let pid = pid_t(first.trimmingCharacters(in: .whitespaces)), pid > 0
        else { return nil }
        return pid
    }

    private var dataDirectory: String { directory + "/data" }
    private var logFile: String { directory + "/server.log" }

    /// Runs one of the server's programs to completion (as `postgres` when we are root), its output in a file.
    private func run(_ program: String, _ arguments: [String]) async throws {
        let executable = runsAsPostgresUser ? "/usr/sbin/runuser" : binDirectory + "/" + program
        let argv = (runsAsPostgresUser ? ["runuser", "-u", "postgres", "--", binDirectory + "/" + program] : [program]) + arguments
        let outputPath = directory + "/\(program).out"
        let status = try await ChildProcess.run(executable, argv, outputPath: outputPath)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw LocalPostgresServerError("\(program) \(arguments.last ?? "") exited with status \(status): \(text.suffix(2000))")
        }
    }
}

/// Why a ``LocalPostgresServer`` could not be started or stopped.
public struct LocalPostgresServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
