import Logging
import NIOConcurrencyHelpers
import Testing

@testable import ConcordProxy

/// The access log (`accessLog: true`, `--access-log`): one `info` line per L7 exchange and per L4 connection,
/// written even though the proxy's log level is `warning`; nothing when it is off.
@Suite(.serialized, .timeLimit(.minutes(3))) struct AccessLogTests {
    /// Keeps every log record (message and metadata) a logger sends it.
    struct Capture: LogHandler {
        let records: NIOLockedValueBox<[(level: Logger.Level, message: String, metadata: [String: String])]>
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
                 function: String, line: UInt) {
            let fields = (metadata ?? [:]).mapValues { "\($0)" }
            records.withLockedValue { $0.append((level, message.description, fields)) }
        }
    }

    static func capturing() -> (Logger, NIOLockedValueBox<[(level: Logger.Level, message: String, metadata: [String: String])]>) {
        let records = NIOLockedValueBox<[(level: Logger.Level, message: String, metadata: [String: String])]>([])
        return (Logger(label: "access-test") { _ in Capture(records: records) }, records)
    }

    @Test func eachHTTPExchangeIsOneLine() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            var config = try ProxyHarness.configuration(backends)
            config.accessLog = true
            let (logger, records) = Self.capturing()
            try await ProxyHarness.withProxy(config, logger: logger) { _, port in
                let ok = try await RawClient.get(port: port, path: "/cart?item=3", headers: ["Cookie": "sid=u1"])
                #expect(ok.status == 200)
                // A request the proxy answers itself (malformed: two Content-Length fields) is logged too.
                let bad = try await RawClient.exchange(port: port, ["POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"])
                #expect(bad.status == 400)
                try await waitFor { records.withLockedValue { $0.filter { $0.message == "access" }.count } >= 2 }
                let lines = records.withLockedValue { $0.filter { $0.message == "access" } }
                #expect(lines.count == 2)
                let first = try #require(lines.first)
                #expect(first.level == .info)
                #expect(first.metadata["method"] == "GET" && first.metadata["target"] == "/cart?item=3")
                #expect(first.metadata["status"] == "200" && first.metadata["outcome"] == "done")
                #expect(first.metadata["backend"] == backends[0].address && first.metadata["client"] == "127.0.0.1")
                #expect(Int(first.metadata["bytes_out"] ?? "") ?? 0 == ok.text.utf8.count)
                #expect(Double(first.metadata["ms"] ?? "") != nil)
                let second = try #require(lines.last)
                #expect(second.metadata["status"] == "400" && second.metadata["outcome"] == "proxy answer")
                #expect(second.metadata["backend"] == "-")
            }
        }
    }

    @Test func eachTCPConnectionIsOneLineWithItsBytes() async throws {
        let backend = try await TestEchoBackend.start(name: "e0")
        do {
            var config = ProxyConfiguration(backends: [try HostPort(parsing: backend.address)], mode: .tcp)
            config.health = HealthCheckConfiguration(interval: 30, rise: 1, fall: 1)
            config.accessLog = true
            let (logger, records) = Self.capturing()
            try await ProxyHarness.withProxy(config, logger: logger) { _, port in
                let response = try await RawClient.exchange(port: port, ["hello ", "world"], halfClose: true)
                #expect(response.text == "e0:hello world|bye")
                try await waitFor { records.withLockedValue { $0.contains { $0.message == "access" } } }
                let lines = records.withLockedValue { $0.filter { $0.message == "access" } }
                #expect(lines.count == 1)
                let line = try #require(lines.first)
                #expect(line.metadata["bytes_in"] == "11")
                #expect(line.metadata["bytes_out"] == String(response.text.utf8.count))
                #expect(line.metadata["backend"] == backend.address && line.metadata["outcome"] == "closed")
                #expect(line.metadata["method"] == nil)
            }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    @Test func offByDefault() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            let (logger, records) = Self.capturing()
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends), logger: logger) { _, port in
                let response = try await RawClient.get(port: port)
                #expect(response.status == 200)
            }
            #expect(records.withLockedValue { $0.filter { $0.message == "access" }.isEmpty })
        }
    }

    private func waitFor(_ condition: () -> Bool) async throws {
        for _ in 0..<100 where !condition() { try await Task.sleep(for: .milliseconds(20)) }
    }
}
