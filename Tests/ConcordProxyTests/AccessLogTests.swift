import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import ConcordProxy

/// The access log (`accessLog: true`, `--access-log`): one line per L7 exchange and per L4 connection, buffered
/// and written in whole-line chunks; nothing when it is off.
@Suite(.serialized, .timeLimit(.minutes(3))) struct AccessLogTests {
    /// A temporary file to log into: its descriptor, and its lines as `key=value` fields once the proxy stopped.
    final class LogFile {
        let path: String
        let descriptor: Int32

        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("concord-access-\(UUID().uuidString).log").path
            descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown) }
        }

        deinit {
            close(descriptor)
            try? FileManager.default.removeItem(atPath: path)
        }

        var text: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

        /// Each line's fields after the timestamp and the word `access`.
        var lines: [[String: String]] {
            text.split(separator: "\n").map { line in
                var fields: [String: String] = [:]
                for part in line.split(separator: " ").dropFirst(2) {
                    let pair = part.split(separator: "=", maxSplits: 1)
                    if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
                }
                return fields
            }
        }
    }

    @Test func eachHTTPExchangeIsOneLine() async throws {
        let log = try LogFile()
        var okResponse = ""
        try await ProxyHarness.withBackends(["a"]) { backends in
            var config = try ProxyHarness.configuration(backends)
            config.accessLog = true
            try await ProxyHarness.withProxy(config, accessLogDescriptor: log.descriptor) { _, port in
                let ok = try await RawClient.get(port: port, path: "/cart?item=3", headers: ["Cookie": "sid=u1"])
                #expect(ok.status == 200)
                okResponse = ok.text
                // A request the proxy answers itself (malformed: two Content-Length fields) is logged too.
                let bad = try await RawClient.exchange(port: port, ["POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"])
                #expect(bad.status == 400)
                // Buffered: the lines reach the file within the one-second flush, or at the latest on stop.
            }
            let lines = log.lines
            #expect(lines.count == 2, "\(log.text)")
            let first = try #require(lines.first)
            #expect(first["method"] == "GET" && first["target"] == "/cart?item=3")
            #expect(first["status"] == "200" && first["outcome"] == "done")
            #expect(first["backend"] == backends[0].address && first["client"] == "127.0.0.1")
            #expect(first["bytes_out"] == String(okResponse.utf8.count))
            #expect(Int(first["us"] ?? "").map { $0 >= 0 } == true)
            let second = try #require(lines.last)
            #expect(second["status"] == "400" && second["outcome"] == "proxy-answer" && second["backend"] == "-")
            // Each line starts with a UTC timestamp.
            #expect(log.text.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ access "#, options: .regularExpression) != nil)
        }
    }

    /// A proxy with the access log on (into `log`) in front of one backend at `address`, for `body`; the backend
    /// is stopped afterwards, also on failure. Returns the log's lines once the proxy stopped.
    private func withLoggingProxy(to address: String, mode: ProxyMode = .http, log: LogFile, stopBackend: () async -> Void,
                                  _ body: (Int) async throws -> Void) async throws -> [[String: String]] {
        do {
            var config = ProxyConfiguration(backends: [try HostPort(parsing: address)], mode: mode, balance: .roundRobin)
            config.health = ProxyHarness.quietHealth
            config.accessLog = true
            try await ProxyHarness.withProxy(config, accessLogDescriptor: log.descriptor) { _, port in try await body(port) }
        } catch {
            await stopBackend()
            throw error
        }
        await stopBackend()
        #expect(log.lines.count == 1, "\(log.text)")
        return log.lines
    }

    @Test func eachTCPConnectionIsOneLineWithItsBytes() async throws {
        let log = try LogFile()
        let backend = try await TestEchoBackend.start(name: "e0")
        let address = backend.address
        var echoed = ""
        let lines = try await withLoggingProxy(to: address, mode: .tcp, log: log, stopBackend: backend.stop) { port in
            let response = try await RawClient.exchange(port: port, ["hello ", "world"], halfClose: true)
            #expect(response.text == "e0:hello world|bye")
            echoed = response.text
        }
        let line = try #require(lines.first)
        #expect(line["bytes_in"] == "11" && line["bytes_out"] == String(echoed.utf8.count))
        #expect(line["backend"] == address && line["outcome"] == "closed" && line["method"] == nil)
    }

    @Test func aResponseCutShortByTheBackendIsAborted() async throws {
        let log = try LogFile()
        let backend = try await TestScriptedBackend.start { _, _ in
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", closeAfter: true)
        }
        let address = backend.address
        let lines = try await withLoggingProxy(to: address, log: log, stopBackend: backend.stop) { port in
            let response = try await RawClient.exchange(port: port, ["GET /cut HTTP/1.1\r\nHost: t\r\n\r\n"])
            #expect(response.status == 200 && response.body == "short")  // then the proxy closed the connection
        }
        let line = try #require(lines.first)
        #expect(line["outcome"] == "aborted" && line["status"] == "200" && line["backend"] == address)
    }

    /// A proxy-made 502 after a backend failed names that backend, not `-`: the line says where the request went.
    @Test func aBackendFailureAnswerNamesTheBackend() async throws {
        let log = try LogFile()
        let closer = try await TestClosingBackend.start()
        let address = closer.address
        let lines = try await withLoggingProxy(to: address, log: log, stopBackend: closer.stop) { port in
            // The backend accepts, then closes before any response byte; a POST is not sent twice.
            let post = try await RawClient.get(port: port, method: "POST", body: "once")
            #expect(post.status == 502)
        }
        let line = try #require(lines.first)
        #expect(line["status"] == "502" && line["outcome"] == "proxy-answer" && line["backend"] == address, "\(log.text)")
    }

    @Test func anUpgradeIsLoggedWhenItSwitches() async throws {
        let log = try LogFile()
        let backend = try await HTTPProxyUpgradeTests.switchingBackend("b0", heads: NIOLockedValueBox([]))
        let address = backend.address
        let lines = try await withLoggingProxy(to: address, log: log, stopBackend: backend.stop) { port in
            let tunnel = try await RawClient.exchange(port: port, [HTTPProxyUpgradeTests.upgradeRequest(), "ping|"],
                                                      pause: .milliseconds(100), halfClose: true)
            #expect(tunnel.status == 101)
        }
        let line = try #require(lines.first)
        #expect(line["status"] == "101" && line["outcome"] == "upgraded" && line["target"] == "/chat" && line["backend"] == address)
    }

    @Test func offByDefault() async throws {
        let log = try LogFile()
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends), accessLogDescriptor: log.descriptor) { _, port in
                let response = try await RawClient.get(port: port)
                #expect(response.status == 200)
            }
        }
        #expect(log.text.isEmpty)
    }

    /// Lines are written in chunks of whole lines once about 4,000 bytes are buffered, and the rest on `flush()`.
    @Test func theSinkWritesWholeLinesInChunks() throws {
        let log = try LogFile()
        let sink = AccessLogSink(descriptor: log.descriptor)
        let line = String(repeating: "x", count: 79)  // with the 20-byte timestamp and the newline: 100 bytes
        for _ in 0..<39 { sink.line { $0.writeString(line) } }
        #expect(log.text.isEmpty)
        sink.line { $0.writeString(line) }  // the 40th reaches 4,000 bytes
        #expect(log.text.utf8.count == 4_000)
        sink.line { $0.writeString(line) }
        #expect(log.text.utf8.count == 4_000)
        sink.flush()
        #expect(log.text.utf8.count == 4_100)
        #expect(log.text.split(separator: "\n").allSatisfy { $0.utf8.count == 99 && $0.hasSuffix(line) })
        #expect(AccessLogSink.timestamp(0) == "1970-01-01T00:00:00Z")
        for value in [0, 7, 10, 4_100, 1_234_567_890, Int.max] {
            var out = ByteBuffer()
            AccessLogEntry.writeDecimal(value, to: &out)
            #expect(String(buffer: out) == String(value))
        }
        #expect(AccessLogSink.timestamp(1_796_122_799) == "2026-12-01T10:59:59Z")  // `date -u -d @1796122799`
    }
}
