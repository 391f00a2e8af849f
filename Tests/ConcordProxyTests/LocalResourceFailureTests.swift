import ConcordNetworking
import ConcordSessionsTesting
import CoreMetrics
import Logging
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import ConcordProxy

/// Which connect failures are this machine's (no verdict on the backend), and how they are reported.
@Suite struct LocalResourceFailureTests {
    @Test func onlyLocalShortagesAreLocal() {
        for code in [EMFILE, ENFILE, ENOBUFS, ENOMEM] {
            #expect(LocalResourceFailure(IOError(errnoCode: code, reason: "socket")) != nil, "errno \(code)")
        }
        for code in [ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ECONNRESET, EADDRNOTAVAIL] {
            #expect(LocalResourceFailure(IOError(errnoCode: code, reason: "connect")) == nil, "errno \(code)")
        }
        #expect(LocalResourceFailure(ChannelError.connectTimeout(.seconds(1))) == nil)
        #expect(LocalResourceFailure(IOError(errnoCode: EMFILE, reason: "socket"))?.description.contains("ulimit -n") == true)
    }

    /// Out of descriptors every connection fails at once: one line a second, saying how many it kept quiet, and
    /// every failure counted.
    @Test func theAlarmLogsOnceAnIntervalAndCountsEveryFailure() async throws {
        let capture = LogCapture()
        let metrics = ProxyMetrics()
        let alarm = LocalResourceAlarm(counter: metrics.localResourceFailures, logger: Logger(label: "t") { _ in capture },
                                       interval: .milliseconds(200))
        let failure = try #require(LocalResourceFailure(IOError(errnoCode: EMFILE, reason: "socket")))
        for _ in 0..<5 { alarm.report(failure, while: "connecting to b", outcome: "answered 503") }
        #expect(capture.messages.count == 1)
        try await Task.sleep(for: .milliseconds(250))
        alarm.report(failure, while: "connecting to b", outcome: "answered 503")
        #expect(capture.messages.count == 2)
        #expect(capture.messages.last?.hasSuffix("answered 503 (and 4 more since the last line)") == true, "\(capture.messages)")
        #expect(capture.lines.allSatisfy { $0.level == .error })
        let text = metrics.registry.emitToString()
        #expect(text.contains("concord_proxy_local_resource_failures_total 6"), "\(text)")
    }
}
