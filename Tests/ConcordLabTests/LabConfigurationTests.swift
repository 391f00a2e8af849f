import ConcordSessionsTesting
import Foundation
import Logging
import Testing

@testable import ConcordLab

@Suite(.timeLimit(.minutes(3))) struct LabConfigurationTests {
    @Test func defaultsFitTheFiveMinuteBudget() throws {
        let configuration = LabConfiguration()
        try configuration.validate()
        #expect(configuration.strategies == LabStrategy.allCases)
        #expect(configuration.users == 2000 && configuration.nodes == 3)
        let perStrategy = configuration.phases.reduce(0) { $0 + $1.seconds }
        // Phases plus about 8 s of start-up, restarts and shutdown per strategy (measured: 4 min 47 s for nine
        // strategies at 24 s each on 2 cores).
        #expect(Double(configuration.strategies.count) * (perStrategy + 8) <= 300)
        #expect(configuration.phases.map(\.kind) == [.warmUp, .steady, .parallel, .restart, .crash, .scaleOut, .scaleIn])
    }

    @Test func loadsAScenarioAndKeepsDefaultsForAbsentFields() throws {
        let configuration = try LabConfiguration.load(yaml: """
            strategies: [store, l4-hash]
            users: 50
            phases:
              - {kind: warm-up, seconds: 1}
              - {name: calm, kind: steady, seconds: 2}
              - {kind: proxy-upgrade, seconds: 3}
            """)
        #expect(configuration.strategies == [.store, .l4Hash])
        #expect(configuration.users == 50)
        #expect(configuration.nodes == 3)
        #expect(configuration.phases.map(\.name) == ["warm-up", "calm", "proxy-upgrade"])
        #expect(configuration.phases.last?.kind == .proxyUpgrade)
        #expect(configuration.shutdownDelaySeconds == 0)
        try configuration.validate()
        let delayed = try LabConfiguration.load(yaml: "shutdownDelaySeconds: 4.5\nproxyAccessLog: true")
        #expect(delayed.shutdownDelaySeconds == 4.5 && delayed.proxyAccessLog)
        #expect(!configuration.proxyAccessLog)
        try delayed.validate()
    }

    /// A mistyped key used to be ignored: `user: 5` ran the default 2,000 users.
    @Test func aScenarioWithAnUnknownKeyOrKindIsRefusedByName() throws {
        #expect(Self.refusal("user: 5").contains("user: unknown setting (did you mean 'users'?)"))
        #expect(Self.refusal("phases: [{kind: steady, sec: 3}]").contains("phases[0].sec: unknown setting (did you mean 'seconds'?)"))
        let kind = Self.refusal("phases: [{kind: warmup, seconds: 3}]")
        #expect(kind.contains("phases[0].kind: 'warmup' is not one of warm-up, steady,"), "\(kind)")
        #expect(try LabConfiguration.load(yaml: "users: 5").users == 5)
    }

    /// The scenarios in docs/lab.md are what people copy: every key and phase kind in them is one the lab knows.
    @Test func theDocumentedScenariosAreAccepted() throws {
        let blocks = try DocumentedExamples.yamlBlocks(inDoc: "lab.md")
        #expect(blocks.count >= 3)
        for block in blocks { _ = try LabConfiguration.load(yaml: block) }
    }

    private static func refusal(_ yaml: String) -> String { thrownText { try LabConfiguration.load(yaml: yaml) } }

    /// An unknown strategy and a missing required field are named where they are (they read "The given data was
    /// not valid YAML." and `CodingKeys(stringValue: "seconds", …)`).
    @Test func scenarioMistakesAreNamedWhereTheyAre() {
        #expect(Self.refusal("strategies: [store, bogus]").contains("strategies: unknown strategy 'bogus'; expected one of local"),
                "\(Self.refusal("strategies: [store, bogus]"))")
        #expect(Self.refusal("phases: [{ kind: steady }]").contains("phases[0].seconds: missing (required here)"),
                "\(Self.refusal("phases: [{ kind: steady }]"))")
    }

    @Test func aCommandPhaseNeedsItsCommandAndOnlyItHasOne() throws {
        let configuration = try LabConfiguration.load(yaml: """
            phases:
              - {kind: steady, seconds: 1}
              - {name: redis primary killed, kind: command, seconds: 6, command: "kill -9 $(cat /tmp/p.pid)", commandTimeoutSeconds: 5}
            """)
        try configuration.validate()
        #expect(configuration.phases.last == LabPhase(
            name: "redis primary killed", kind: .command, seconds: 6, command: "kill -9 $(cat /tmp/p.pid)", commandTimeoutSeconds: 5))
        #expect(LabPhase(kind: .command, seconds: 6, command: "x").commandTimeout == .seconds(36))
        for phases in ["[{kind: command, seconds: 1}]", "[{kind: steady, seconds: 1, command: 'true'}]",
                       "[{kind: command, seconds: 1, command: ''}]", "[{kind: steady, seconds: 1, commandTimeoutSeconds: 3}]"] {
            #expect(throws: LabError.self, "\(phases)") { try LabConfiguration.load(yaml: "phases: \(phases)").validate() }
        }
    }

    /// A command phase's command runs to its end (output in the run's directory); a failing one, or one that
    /// outlives its timeout, fails the run with its output.
    @Test func aCommandPhaseRunsItsCommandAndFailsTheRunWhenItFails() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-lab-command-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = LabCluster(
            strategy: .store, configuration: LabConfiguration(), executable: "concord", workDirectory: directory.path,
            proxyAvailable: true, logger: Logger(label: "test"))
        try await cluster.inject(LabPhase(kind: .command, seconds: 1, command: "echo injected > \(directory.path)/marker; echo said"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("marker").path))
        #expect((try? String(contentsOfFile: directory.appendingPathComponent("command-1.log").path, encoding: .utf8)) == "said\n")

        await #expect { try await cluster.inject(LabPhase(kind: .command, seconds: 1, command: "echo why; exit 3")) } throws: { error in
            "\(error)".contains("exited with status 3") && "\(error)".contains("why")
        }
        let started = ContinuousClock.now
        await #expect { try await cluster.inject(LabPhase(kind: .command, seconds: 1, command: "sleep 30", commandTimeoutSeconds: 0.5)) } throws: { error in
            "\(error)".contains("did not end within")
        }
        #expect(ContinuousClock.now - started < .seconds(20), "not the 30 s the command would sleep")
    }

    @Test func appNodesGetAStoreReadWaitOnlyWhenSet() async throws {
        func arguments(_ yaml: String) async throws -> [String] {
            await LabCluster(
                strategy: .store, configuration: try LabConfiguration.load(yaml: yaml), executable: "concord",
                workDirectory: "/tmp", proxyAvailable: true, logger: Logger(label: "test")
            ).nodeArguments(id: "node-1", port: 1, replicationPort: 2, peers: [])
        }
        let waiting = try await arguments("storeReadWaitSeconds: 3")
        let index = try #require(waiting.firstIndex(of: "--store-read-wait"))
        #expect(waiting[index + 1] == "3.0")
        #expect(try await !arguments("users: 5").contains("--store-read-wait"))
        #expect(throws: LabError.self) { try LabConfiguration.load(yaml: "storeReadWaitSeconds: 61").validate() }
    }

    /// The store URL reaches the nodes through their environment, not their command line (`ps` shows that to
    /// every user of the machine, and a Redis or PostgreSQL URL may hold a password).
    @Test func theStoreURLStaysOutOfTheNodesCommandLines() async throws {
        let cluster = LabCluster(
            strategy: .store, configuration: LabConfiguration(storeURL: "redis://:S3CRET@127.0.0.1:6379"), executable: "concord",
            workDirectory: "/tmp", proxyAvailable: true, logger: Logger(label: "test"))
        let arguments = await cluster.nodeArguments(id: "node-1", port: 1, replicationPort: 2, peers: [])
        #expect(!arguments.joined(separator: " ").contains("S3CRET") && !arguments.contains("--store"), "\(arguments)")
        #expect(await cluster.nodeEnvironment["CONCORD_STORE"] == "redis://:S3CRET@127.0.0.1:6379")
    }

    @Test func theProxyGetsItsAccessLogOnlyWhenAsked() async {
        func arguments(_ accessLog: Bool) async -> [String] {
            await LabCluster(
                strategy: .store, configuration: LabConfiguration(proxyAccessLog: accessLog), executable: "concord",
                workDirectory: "/tmp", proxyAvailable: true, logger: Logger(label: "test")
            ).proxyArguments()
        }
        #expect(await arguments(true).contains("--access-log"))
        #expect(await !arguments(false).contains("--access-log"))
    }

    @Test func theProxyGetsAPerBackendLimitOnlyWhenSet() async throws {
        func arguments(_ limit: Int?, strategy: LabStrategy = .store) async -> [String] {
            await LabCluster(
                strategy: strategy, configuration: LabConfiguration(proxyMaxRequestsPerBackend: limit), executable: "concord",
                workDirectory: "/tmp", proxyAvailable: true, logger: Logger(label: "test")
            ).proxyArguments()
        }
        let limited = await arguments(8)
        let index = try #require(limited.firstIndex(of: "--max-requests-per-backend"))
        #expect(limited[index + 1] == "8")
        #expect(await !arguments(nil).contains("--max-requests-per-backend"))
        // The L4 proxy would limit connections, which virtual users hold for the whole run: not passed there.
        #expect(await !arguments(8, strategy: .l4Hash).contains("--max-requests-per-backend"))
        #expect(try LabConfiguration.load(yaml: "proxyMaxRequestsPerBackend: 16").proxyMaxRequestsPerBackend == 16)
        #expect(LabConfiguration().proxyMaxRequestsPerBackend == nil)
        #expect(throws: LabError.self) { try LabConfiguration(proxyMaxRequestsPerBackend: 0).validate() }
    }

    @Test func nodesGetTheQuiesceGraceOnlyWhenSet() async throws {
        func arguments(_ grace: Double?) async -> [String] {
            await LabCluster(
                strategy: .store, configuration: LabConfiguration(quiesceGraceSeconds: grace), executable: "concord",
                workDirectory: "/tmp", proxyAvailable: true, logger: Logger(label: "test")
            ).nodeArguments(id: "node-1", port: 8081, replicationPort: 9081, peers: [])
        }
        let withGrace = await arguments(0)
        #expect(withGrace.firstIndex(of: "--quiesce-grace").map { withGrace[$0 + 1] } == "0.0")
        #expect(await !arguments(nil).contains("--quiesce-grace"))
        #expect(try LabConfiguration.load(yaml: "quiesceGraceSeconds: 0").quiesceGraceSeconds == 0)
        #expect(try LabConfiguration.load(yaml: "users: 5").quiesceGraceSeconds == nil)
    }

    @Test func moduloHashingIsAStrategyOfItsOwn() throws {
        #expect(try LabStrategy.parseList("l7-hash, l7-hash-modulo") == [.l7Hash, .l7HashModulo])
        #expect(LabStrategy.l7HashModulo.balancing == .userHashModulo)
        #expect(LabStrategy.l7HashModulo.appStrategy == "local")
    }

    @Test func rejectsBadInput() {
        #expect(throws: LabError.self) { try LabStrategy.parseList("store,redis") }
        #expect(throws: LabError.self) { try LabConfiguration.load(yaml: "users: [1, 2]") }
        #expect(throws: LabError.self) { try LabConfiguration(users: 0).validate() }
        #expect(throws: LabError.self) { try LabConfiguration(shutdownDelaySeconds: 61).validate() }
        #expect(throws: LabError.self) { try LabConfiguration(shutdownDelaySeconds: -1).validate() }
        #expect(throws: LabError.self) { try LabConfiguration(quiesceGraceSeconds: 61).validate() }
        #expect(throws: LabError.self) { try LabConfiguration(phases: [LabPhase(kind: .steady, seconds: 10_000)]).validate() }
    }
}
