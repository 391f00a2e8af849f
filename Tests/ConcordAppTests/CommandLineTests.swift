import ConcordLab
import ConcordSessions
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real `concord` binary: on a port that is taken, `concord app` and `concord proxy` exit with status 1 and one
/// line naming the address and the reason (not NIO's `bind(descriptor:ptr:bytes:)` message); `--event-loops`
/// reaches the proxy and is checked.
@Suite(.serialized, .timeLimit(.minutes(2))) struct CommandLineTests {
    static let concordExecutable: String = {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return directory.appendingPathComponent("concord").path
    }()

    /// A listening socket on a free loopback port, held while `body` runs.
    func withTakenPort(_ body: (Int) async throws -> Void) async throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        try await body(Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Runs `concord ARGUMENTS`, which must exit by itself within 20 s (it is stopped otherwise); returns its
    /// exit status and its output (standard output and error). Spawned and reaped like the lab's processes
    /// (`LabChild`: `posix_spawn`, a blocking `waitpid`), not with Foundation's `Process`, whose exit notification
    /// went missing in one loaded run here (an exited concord reported as "still running"). Waits with `Task.sleep`:
    /// a blocked thread would starve the parallel tests.
    func run(_ arguments: [String]) async throws -> (status: Int32, stderr: String) {
        try #require(FileManager.default.isExecutableFile(atPath: Self.concordExecutable),
                     "the concord executable must be built beside the tests (swift build --build-tests)")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("concord-cli-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try LabChild.spawn(
            name: "concord", executable: Self.concordExecutable, arguments: arguments,
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: log, registry: ChildRegistry())
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while child.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let ranTooLong = child.isRunning
        if ranTooLong { await child.stop(grace: .seconds(2)) }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if ranTooLong { Issue.record("concord \(arguments) still ran after 20 s; its output:\n\(text.suffix(3000))") }
        _ = await child.waitForExit()
        return (child.exitCode ?? -1, text)
    }

    @Test func theAppNamesTheTakenAddress() async throws {
        try await withTakenPort { port in
            // With --shutdown-delay the app runs in a service group of its own: the same error comes out.
            for extra in [[], ["--shutdown-delay", "1"]] {
                let (status, stderr) = try await run(["app", "--host", "127.0.0.1", "--port", String(port)] + extra)
                #expect(status == 1, "\(extra)")
                #expect(stderr.contains("Error: cannot listen on 127.0.0.1:\(port) (HTTP): address already in use"), "\(extra): \(stderr)")
            }
        }
    }

    @Test func theAppAndTheProxyTakeALogLevel() async throws {
        let (status, output) = try await run(["app", "--log-level", "loud"])
        #expect(status != 0)
        #expect(output.contains("--log-level must be one of trace, debug, info"), "\(output)")
        let (proxyStatus, proxyOutput) = try await run(["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--log-level", "loud"])
        #expect(proxyStatus != 0)
        #expect(proxyOutput.contains("--log-level must be one of trace, debug, info"), "\(proxyOutput)")
        // At debug the service lifecycle's own lines show (here the bind error ends the run at once).
        try await withTakenPort { port in
            let (status, output) = try await run(["app", "--port", String(port), "--log-level", "debug"])
            #expect(status == 1)
            #expect(output.contains("[ServiceLifecycle]"), "\(output)")
        }
    }

    /// A bad flag or file is refused with the subcommand's usage (it printed `Usage: concord <subcommand>`) and
    /// the status ArgumentParser gives validation errors.
    @Test func aBadFlagPrintsTheSubcommandsUsage() async throws {
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("concord-cli-\(UUID().uuidString).yaml").path
        try "phases: [{ kind: warm-up, seconds: 3 }, { kind: steady, seconds: 5 }]\n".write(toFile: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: scenario) }
        for (command, usage) in [(["proxy", "--balance", "foo", "--backend", "127.0.0.1:9"], "Usage: concord proxy"),
                                 (["lab", "--scenario", scenario, "--duration", "20"], "has phases of its own"),
                                 (["proxy", "--algorithm", "foo", "--backend", "127.0.0.1:9"], "Usage: concord proxy"),
                                 (["proxy", "--balance", "round-robin", "--key", "cookie:sid", "--backend", "127.0.0.1:9"], "--balance round-robin would ignore it"),
                                 (["proxy", "--balance", "least-conn", "--algorithm", "maglev", "--backend", "127.0.0.1:9"], "leave --algorithm out"),
                                 (["proxy", "--balance", "round-robin", "--bounded-load", "1.25", "--backend", "127.0.0.1:9"], "balance round-robin would ignore it"),
                                 (["proxy", "--max-queue-per-backend", "5", "--backend", "127.0.0.1:9"], "bounds the queue of limits.maxRequestsPerBackend"),
                                 (["app", "--strategy", "bogus"], "Usage: concord app"),
                                 (["app", "--strategy", "client", "--session-key", "abc"], "the session key must be 32 bytes in base64"),
                                 (["app", "--strategy", "sync", "--peers", "garbage"], "peer 'garbage' is not NODE-ID@HOST:PORT"),
                                 (["app", "--strategy", "store", "--store", "mysql://db"], "store URL 'mysql://db' is not supported"),
                                 // A TLS file the URL names that is missing (exit 1 at start before 2026-12-03).
                                 (["app", "--strategy", "store", "--store", "rediss://127.0.0.1:9?caFile=/nonexistent/ca.pem"],
                                  "caFile /nonexistent/ca.pem: no such file"),
                                 (["lab", "--users", "0"], "Usage: concord lab"),
                                 (["lab", "--store", "mysql://db/x"], "storeURL 'mysql://db/x' is none of sqlite:PATH"),
                                 (["lab", "--output", "/etc/hostname"], "outputDirectory /etc/hostname is a file"),
                                 (["lab", "--scenario", "/nonexistent/scenario.yaml"], "Usage: concord lab"),
                                 (["bench", "stores", "--backend", "redis", "--url", "redis://:S3CRET@127.0.0.1:badport"], "--url redis://***@127.0.0.1:badport"),
                                 (["bench", "stores", "--backend", "postgres", "--url", "postgres://u@h:99999/x"], "port 99999 is out of range"),
                                 // It says what would do (it said only "at least 100 per round" before 2026-12-03).
                                 (["bench", "stores", "--operations", "100"], "is 20 per round; a round needs at least 100: give --operations 500 or more, or fewer --rounds"),
                                 (["app", "--strategy", "client", "--session-key", "c2hvcnQ="], "is 5 bytes; it must be 32")] {
            let (status, output) = try await run(command)
            #expect(status == 64, "\(command): \(output)")
            #expect(output.contains(usage) && !output.contains("Usage: concord <subcommand>"), "\(command): \(output)")
        }
    }

    /// A SQLite store that can never work is refused at start: an empty path (a private database per connection:
    /// the node said it was ready and answered every session request 503 "no such table") or a missing directory.
    @Test func theAppRefusesASQLiteStoreItCannotShare() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("not a database at all, just text\n".utf8).write(to: URL(fileURLWithPath: directory + "/junk.db"))
        for (url, message) in [("sqlite:", "give a file path; an empty path"), ("sqlite::memory:", "give a file path; an empty path"),
                               ("sqlite:/nonexistent-concord-dir/s.sqlite", "the directory /nonexistent-concord-dir does not exist"),
                               ("sqlite:\(directory)", "that is a directory"),
                               ("sqlite:\(directory)/junk.db", "the file is not an SQLite database")] {
            let (status, output) = try await run(["app", "--strategy", "store", "--store", url, "--port", "0"])
            #expect(status == 64, "\(url): \(output)")  // a usage error since 2026-12-03 (exit 1 at start before)
            #expect(output.contains(message), "\(url): \(output)")
        }
    }

    /// A store URL's secrets stay out of the usage error (the app's prefix printed the raw URL before 2026-12-03),
    /// and several redis:// URLs are a cluster's seeds, not a malformed database.
    @Test func storeURLsInErrorsHideTheirSecrets() async throws {
        for url in ["redis://:TOPSECRET@127.0.0.1:6379/abc", "redis-sentinel://:TOPSECRET@127.0.0.1:26379?sentinelPassword=TOPSECRET&foo=1#m",
                    "postgres://u:TOPSECRET@127.0.0.1:108576/app"] {
            let (status, output) = try await run(["app", "--strategy", "store", "--store", url, "--port", "0"])
            #expect(status == 64, "\(output)")
            #expect(!output.contains("TOPSECRET") && output.contains("***"), "\(output)")
        }
        let (status, output) = try await run(["app", "--strategy", "store", "--store", "redis://127.0.0.1:7000,127.0.0.1:7001", "--port", "0"])
        #expect(status == 64 && output.contains("Redis Cluster seeds are several URLs"), "\(output)")
    }

    @Test func theAppRejectsAQuiesceGraceOutOfRange() async throws {
        for value in ["-1", "61"] {
            let (status, output) = try await run(["app", "--quiesce-grace=\(value)"])
            #expect(status != 0)
            #expect(output.contains("--quiesce-grace must be 0...60 seconds, got \(Double(value)!)"), "\(output)")
        }
    }

    @Test func theAppRejectsAStoreReadWaitOutOfRange() async throws {
        for value in ["-1", "61"] {
            let (status, output) = try await run(["app", "--store-read-wait=\(value)"])
            #expect(status != 0)
            #expect(output.contains("--store-read-wait must be 0...60 seconds, got \(Double(value)!)"), "\(output)")
        }
    }

    /// `--flag -5` reaches the option's range check (ArgumentParser alone said "Missing value"), while a missing
    /// value is still called missing.
    @Test func aNegativeNumberAfterAFlagIsItsValue() async throws {
        for (command, message) in [(["app", "--store-read-wait", "-1"], "--store-read-wait must be 0...60 seconds, got -1.0"),
                                   (["lab", "--users", "-5"], "users must be 1...20000, got -5"),
                                   (["proxy", "--backend", "127.0.0.1:9", "--max-connections", "-5"], "limits.maxConnections must be at least 1, got -5"),
                                   (["bench", "stores", "--rounds", "-2"], "rounds must be 1…99"),
                                   (["app", "--store-read-wait", "--port", "0"], "Missing value for '--store-read-wait")] {
            let (status, output) = try await run(command)
            #expect(status == 64, "\(command): \(output)")
            #expect(output.contains(message), "\(command): \(output)")
        }
    }

    /// Flags the strategy does not use are named in a warning (they were ignored without a word), and an admin
    /// token too short to be a secret is refused.
    @Test func theAppWarnsAboutFlagsItsStrategyIgnores() async throws {
        try await withTakenPort { port in
            let (status, output) = try await run(
                ["app", "--strategy", "local", "--store", "redis://127.0.0.1:1", "--peers", "a@127.0.0.1:1", "--port", String(port)])
            #expect(status == 1, "\(output)")
            #expect(output.contains("--store has no effect with --strategy local") && output.contains("--peers has no effect"), "\(output)")
            let (storeStatus, storeOutput) = try await run(["app", "--strategy", "store", "--store", "sqlite:\(NSTemporaryDirectory())x.sqlite", "--port", String(port)])
            #expect(storeStatus == 1 && !storeOutput.contains("has no effect"), "\(storeOutput)")
        }
        let (status, output) = try await run(["app", "--strategy", "sync", "--admin-token", "short"])
        #expect(status == 64 && output.contains("--admin-token (or CONCORD_ADMIN_TOKEN) must be at least 16"), "\(output)")
        let (samePortStatus, samePort) = try await run(["app", "--strategy", "ring", "--port", "9500", "--replication-port", "9500"])
        #expect(samePortStatus == 64 && samePort.contains("--port and --replication-port are both 9500"), "\(samePort)")
    }

    /// Progress output that cannot be written (a full disk, a closed pipe) is dropped: `FileHandle.write` trapped on
    /// it (exit 132, "Illegal instruction") in the middle of a bench or lab run.
    @Test func progressOutputThatCannotBeWrittenDoesNotEndTheRun() async throws {
        let child = try LabChild.spawn(
            name: "concord", executable: Self.concordExecutable, arguments: ["bench", "hashing", "--nodes", "3", "--keys", "1000"],
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: "/dev/full", registry: ChildRegistry())
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while child.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if child.isRunning { await child.stop(grace: .seconds(2)) }
        _ = await child.waitForExit()
        #expect(child.exitCode == 0, "exit \(String(describing: child.exitCode))")
    }

    /// A store that does not answer ends `bench stores` with one error that says so (exit 1), before the table's
    /// header: before 2026-12-03 the header came out, then the error of the first save.
    @Test func theStoreBenchSaysWhenTheStoreDoesNotAnswer() async throws {
        let closed = try LoopbackPort.free()  // nothing listens there
        let (status, output) = try await run(["bench", "stores", "--backend", "redis", "--url", "redis://127.0.0.1:\(closed)"])
        #expect(status == 1, "\(output.suffix(1000))")
        #expect(output.contains("Error: redis: the store does not answer (") && output.contains("nothing was measured"), "\(output.suffix(1000))")
        #expect(!output.contains("load ops/s"), "no table header: \(output.suffix(1000))")
    }

    /// A store that never answers ends its strategy after the warm-up (nothing answered), not after every phase:
    /// the error comes in seconds (before 2026-12-03 the whole 14 s ran, every request a 503).
    @Test func theLabSkipsTheRestOfAStrategyWhoseWarmUpGotNoAnswer() async throws {
        let closed = try LoopbackPort.free()  // nothing listens there
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("concord-lab-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let started = ContinuousClock.now
        let (status, log) = try await run(["lab", "--strategies", "store", "--store", "redis://127.0.0.1:\(closed)", "--users", "5",
                                           "--nodes", "1", "--duration", "14", "--output", output])
        let took = ContinuousClock.now - started
        #expect(status == 1, "\(log.suffix(1500))")
        #expect(log.contains("[store] no request of the warm-up got an answer (") && log.contains("the other phases are skipped"),
                "\(log.suffix(1500))")
        #expect(log.contains("error: no request got an answer with store"), "\(log.suffix(1500))")
        #expect(took < .seconds(11), "took \(took)")
    }

    /// `bench stores --url` takes an SQLite file as `concord app --store` does (`sqlite:PATH`), not only as a path.
    @Test func theStoreBenchTakesAnSQLiteURL() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("concord-bench-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) } }
        let (status, output) = try await run(["bench", "stores", "--backend", "sqlite", "--url", "sqlite:\(file)",
                                              "--operations", "200", "--rounds", "1", "--concurrency", "1"])
        #expect(status == 0, "\(output.suffix(1000))")
        #expect(FileManager.default.fileExists(atPath: file), "the benchmark did not use \(file)")
    }

    /// The lab writes its report after each strategy, so a run stopped with Ctrl-C keeps the strategies it finished
    /// (they were lost with the process).
    @Test func anInterruptedLabKeepsItsFinishedStrategies() async throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("concord-lab-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let registry = ChildRegistry()
        defer { registry.terminateAll() }
        let lab = try LabChild.spawn(
            name: "lab", executable: Self.concordExecutable,
            arguments: ["lab", "--strategies", "local,client", "--users", "10", "--nodes", "1", "--duration", "7", "--output", output],
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: output + ".log", registry: registry)
        defer { try? FileManager.default.removeItem(atPath: output + ".log") }
        let results = output + "/results.json"
        let deadline = ContinuousClock.now.advanced(by: .seconds(90))
        while lab.isRunning && !FileManager.default.fileExists(atPath: results) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        try #require(FileManager.default.fileExists(atPath: results), "no report after the first strategy: \(lab.logTail())")
        lab.send(SIGINT)
        _ = await lab.waitForExit()
        let text = try String(contentsOfFile: results, encoding: .utf8)
        #expect(text.contains("\"strategy\" : \"local\""), "\(text.prefix(500))")
        // Its standard error went to a file: status lines as plain lines, no terminal control codes.
        let log = try String(contentsOfFile: output + ".log", encoding: .utf8)
        #expect(log.contains("[local] ") && !log.contains("\u{1B}") && !log.contains("\r"), "\(log.suffix(1500))")
    }

    @Test func theProxyNamesTheTakenAddress() async throws {
        try await withTakenPort { port in
            // One event loop: the affinity line (printed before the bind) names one CPU.
            let (status, stderr) = try await run(["proxy", "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:9", "--event-loops", "1"])
            #expect(status == 1)
            #expect(stderr.contains("Error: cannot listen on 127.0.0.1:\(port) (client listener): address already in use"), "\(stderr)")
            if stderr.contains("event loops pinned to CPUs") {
                #expect(stderr.contains("event loops pinned to CPUs 0 ("), "\(stderr)")
            }
        }
    }

    @Test func theProxyTakesABackendQueueFromItsFlags() async throws {
        let (status, stderr) = try await run(["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--max-requests-per-backend", "0"])
        #expect(status != 0)
        #expect(stderr.contains("Error: limits.maxRequestsPerBackend must be at least 1 (leave it out for no limit), got 0"), "\(stderr)")
        let (timeoutStatus, timeoutError) = try await run(["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9",
                                                           "--max-requests-per-backend", "4", "--queue-timeout", "0"])
        #expect(timeoutStatus != 0)
        #expect(timeoutError.contains("Error: limits.queueTimeout must be more than 0 and less than 86400 seconds, got 0.0"), "\(timeoutError)")
        let (connectionsStatus, connectionsError) = try await run(["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9",
                                                                   "--max-connections", "0"])
        #expect(connectionsStatus != 0)
        #expect(connectionsError.contains("maxConnections"), "\(connectionsError)")
    }

    @Test func theProxyWantsBothTLSFilesAndNamesAMissingOne() async throws {
        let base = ["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9"]
        let (keyOnly, keyOnlyError) = try await run(base + ["--tls-key", "/nonexistent/key.pem"])
        #expect(keyOnly != 0)
        #expect(keyOnlyError.contains("Error: --tls-key needs --tls-certificate"), "\(keyOnlyError)")
        let (missing, missingError) = try await run(base + ["--tls-certificate", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"])
        #expect(missing == 1)
        #expect(missingError.contains("Error: tls certificateChain /nonexistent/cert.pem: no such file"), "\(missingError)")
        let (backendCA, backendCAError) = try await run(base + ["--backend-ca", "/nonexistent/ca.pem"])
        #expect(backendCA == 1)
        #expect(backendCAError.contains("Error: backendTLS caFile /nonexistent/ca.pem: no such file"), "\(backendCAError)")
        let (redirect, redirectError) = try await run(base + ["--http-redirect", "127.0.0.1:0"])
        #expect(redirect != 0)
        #expect(redirectError.contains("Error: --http-redirect sends clients to HTTPS: it needs --mode http and TLS"), "\(redirectError)")
        let (http2, http2Error) = try await run(base + ["--http2"])
        #expect(http2 != 0)
        #expect(http2Error.contains("Error: --http2 is offered by ALPN during the TLS handshake: it needs --tls-certificate"), "\(http2Error)")
    }

    @Test func theProxyRejectsAnEventLoopCountOutOfRange() async throws {
        for count in ["0", "1025"] {
            let (status, stderr) = try await run(["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--event-loops", count])
            #expect(status != 0)
            #expect(stderr.contains("Error: --event-loops must be 1...1024, got \(count)"), "\(stderr)")
        }
    }
}
