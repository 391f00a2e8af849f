import ConcordSessions
import ConcordSessionsTesting
import PostgresNIO
import Testing

@testable import ConcordPostgres

@Suite("PostgresSessionStore", .sharedPostgresServer, .timeLimit(.minutes(3)))
struct PostgresSessionStoreTests {
    @Test(arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        let configuration = try SharedPostgresServer.server().storeConfiguration(tableName: "conformance_\(check)")
        let options = SessionStoreConformance.Options(
            shortTTL: .seconds(1), expiryMargin: .milliseconds(300),
            maximumPayloadSize: configuration.maximumPayloadSize)
        try await SessionStoreConformance.run(check, options: options) { body in
            try await withPostgresStore(configuration) { try await body($0) }
        }
    }

    /// Several app servers starting together all create the schema on first use without tripping over each other.
    @Test func storesRacingToCreateTheSchemaAllSucceed() async throws {
        let configuration = try SharedPostgresServer.server().storeConfiguration(tableName: "schema_race")
        try await withThrowingTaskGroup(of: UInt64.self) { group in
            for index in 0..<4 {
                group.addTask {
                    try await withPostgresStore(configuration) { store in
                        try await store.save(StoredSession(id: "s\(index)", payload: [UInt8(index)]), ttl: .seconds(60), expectedVersion: 0)
                    }
                }
            }
            for try await version in group { #expect(version == 1) }
        }
        let payloads = try await withPostgresStore(configuration) { store in
            var payloads: [[UInt8]?] = []
            for index in 0..<4 { payloads.append(try await store.load(id: "s\(index)")?.payload) }
            return payloads
        }
        #expect(payloads == (0..<4).map { [UInt8($0)] })
    }

    @Test func runSweepsExpiredRowsOnTheInjectedClock() async throws {
        let server = try SharedPostgresServer.server()
        let configuration = server.storeConfiguration(tableName: "sweep")
        let clock = ManualClock()
        try await withPostgresStore(configuration, clock: clock) { store in
            for index in 0..<3 {
                _ = try await store.save(StoredSession(id: "old\(index)", payload: [1]), ttl: .milliseconds(1), expectedVersion: nil)
            }
            _ = try await store.save(StoredSession(id: "live", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            try await Task.sleep(for: .milliseconds(20))  // the short TTL passes on the server's clock
            #expect(try await rowCount(server, table: "sweep") == 4, "expired rows stay until a sweep")
            try await waitUntil { clock.sleeperCount == 1 }
            clock.advance(by: configuration.sweepInterval)
            try await waitUntil { try await rowCount(server, table: "sweep") == 1 }
            #expect(try await store.load(id: "live") != nil)
        }
    }

    @Test func configurationFromURL() throws {
        let configuration = try PostgresSessionStoreConfiguration(url: "postgres://ann:s%40cret@db.local:6543/app?sslmode=require")
        #expect(configuration.host == "db.local")
        #expect(configuration.port == 6543)
        #expect(configuration.username == "ann")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == "app")
        #expect(configuration.tls == .require)
        let defaults = try PostgresSessionStoreConfiguration(url: "postgresql://127.0.0.1")
        #expect(defaults.port == 5432 && defaults.username == "postgres" && defaults.database == nil && defaults.tls == .prefer)
        let error = #expect(throws: PostgresSessionStoreConfigurationError.self) {
            _ = try PostgresSessionStoreConfiguration(url: "mysql://ann:secret@host/db")
        }
        #expect(error.map { !"\($0)".contains("secret") } == true, "the message never repeats a password")
        #expect(throws: PostgresSessionStoreConfigurationError.self) {
            _ = try PostgresSessionStoreConfiguration(url: "postgres://host/db?sslmode=sometimes")
        }
        // libpq's sslmodes and sslrootcert; any other parameter is refused (they were ignored: `sslrootcert=`,
        // `password=` or a misspelt `sslmdoe=` changed nothing, silently).
        #expect(try PostgresSessionStoreConfiguration(url: "postgres://h/db?sslmode=verify-full").tls == .verifyFull)
        #expect(try PostgresSessionStoreConfiguration(url: "postgres://h/db?sslmode=verify-ca").tls == .verifyCA)
        let rooted = try PostgresSessionStoreConfiguration(url: "postgres://h/db?sslmode=verify-ca&sslrootcert=/etc/hostname")
        #expect(rooted.rootCertificatePath == "/etc/hostname")
        for (url, says) in [
            ("postgres://h/db?sslmdoe=disable", "unknown parameter 'sslmdoe' (known: sslmode, sslrootcert)"),
            ("postgres://h/db?password=x", "unknown parameter 'password'"),
            ("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "sslrootcert /nonexistent/ca.pem: no readable file there"),
            ("postgres://h/db?sslmode=disable&sslrootcert=/etc/hostname", "sslrootcert is for TLS, but sslmode is disable"),
            ("postgres://h/db?sslmode=sometimes", "sslmode must be one of disable, prefer, require, verify-ca, verify-full"),
        ] {
            let error = #expect(throws: PostgresSessionStoreConfigurationError.self, "\(url)") {
                _ = try PostgresSessionStoreConfiguration(url: url)
            }
            #expect(error.map { "\($0)".contains(says) } == true, "\(url): \(String(describing: error))")
        }
        // A port past 65535 reached port modulo 65536: 107968 was another server's 42432.
        for url in ["postgres://h:107968/app", "postgres://h:99999/app", "postgres://h:0/app"] {
            let error = #expect(throws: PostgresSessionStoreConfigurationError.self, "\(url)") {
                _ = try PostgresSessionStoreConfiguration(url: url)
            }
            #expect(error.map { "\($0)".contains("out of range") } == true)
        }
    }

    @Test func aPortOutOfRangeGivenInCodeFailsEveryOperationSayingSo() async throws {
        let store = PostgresSessionStore(configuration: .init(host: "127.0.0.1", port: 107_968, operationTimeout: .seconds(2)))
        let error = await #expect(throws: SessionStoreError.self) { _ = try await store.load(id: "x") }
        #expect(error.map { $0.isUnavailable && "\($0)".contains("port 107968 is out of range") } == true, "\(String(describing: error))")
    }
}

/// Rows in `table`, expired ones included (what a sweep removes), counted over a connection of its own.
func rowCount(_ server: LocalPostgresServer, table: String) async throws -> Int {
    let connection = try await PostgresConnection.connect(
        configuration: .init(host: "127.0.0.1", port: server.port, username: "postgres", password: nil, database: "postgres", tls: .disable),
        id: 1, logger: Logger(label: "test"))
    do {
        let rows = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)"), logger: Logger(label: "test"))
        var count = 0
        for try await value in rows.decode(Int64.self) { count = Int(value) }
        try await connection.close()
        return count
    } catch {
        try? await connection.close()
        throw error
    }
}

