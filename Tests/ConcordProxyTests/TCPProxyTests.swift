import ConcordSessionsTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import ConcordProxy

@Suite(.serialized, .timeLimit(.minutes(3))) struct TCPProxyTests {
    func withEchoBackends<T>(_ count: Int, _ body: ([TestEchoBackend]) async throws -> T) async throws -> T {
        try await ProxyHarness.withServers((0..<count).map { "e\($0)" }, start: { try await TestEchoBackend.start(name: $0) }, body)
    }

    /// Both engines run every test here: `direct` (the default, the proxy's own epoll loops) and `nio`.
    func configuration(_ backends: [TestEchoBackend], balance: BalanceStrategy, engine: TCPEngine = .direct) throws -> ProxyConfiguration {
        var c = ProxyConfiguration(backends: try backends.map { try HostPort(parsing: $0.address) }, mode: .tcp, balance: balance)
        c.tcpEngine = engine
        c.health = ProxyHarness.quietHealth
        return c
    }

    @Test(arguments: TCPEngine.allCases)
    func ipHashPinsAClientAndStreamsBothWaysWithHalfClose(engine: TCPEngine) async throws {
        try await withEchoBackends(3) { backends in
            try await ProxyHarness.withProxy(try configuration(backends, balance: .hash, engine: engine)) { server, port in
                #expect(server.tcpEngineInUse == engine)
                var seen: Set<String> = []
                for _ in 0..<5 {
                    let response = try await RawClient.exchange(port: port, ["hello ", "world"], halfClose: true)
                    let name = String(response.text.prefix(while: { $0 != ":" }))
                    seen.insert(name)
                    // Echoed bytes, then the backend's answer to our half-close.
                    #expect(response.text == "\(name):hello world|bye")
                }
                #expect(seen.count == 1, "one client address, one backend")
            }
        }
    }

    @Test(arguments: TCPEngine.allCases)
    func aPairThatCarriesNoBytesForTheIdleTimeoutIsClosedAndAnActiveOneIsNot(engine: TCPEngine) async throws {
        try await withEchoBackends(1) { backends in
            var c = try configuration(backends, balance: .roundRobin, engine: engine)
            c.limits.tcpIdleTimeout = 2
            try await ProxyHarness.withProxy(c) { _, port in
                let start = ContinuousClock.now
                // Gaps of 0.3 s keep the pair alive (each byte re-arms the timeout); then it goes quiet and the
                // proxy closes it ≈ 2 s later, long before the client's own 30 s limit. (The timeout leaves a loaded
                // machine 1.7 s of slack between pieces.)
                let response = try await RawClient.exchange(port: port, ["a", "b", "c", "d"], pause: .milliseconds(300), timeout: .seconds(30))
                let elapsed = ContinuousClock.now - start
                #expect(response.text == "e0:abcd", "every piece crossed while the pair was active")
                #expect(elapsed >= .milliseconds(2_800), "closed at \(elapsed), before 0.9 s of pauses + 2 s idle")
                #expect(elapsed < .seconds(20), "closed at \(elapsed): the idle timeout did not fire")
            }
        }
    }

    @Test(arguments: TCPEngine.allCases)
    func roundRobinAndFailoverToTheNextNode(engine: TCPEngine) async throws {
        try await withEchoBackends(3) { backends in
            try await ProxyHarness.withProxy(try configuration(backends, balance: .roundRobin, engine: engine)) { _, port in
                var names: [String] = []
                for _ in 0..<6 {
                    let response = try await RawClient.exchange(port: port, ["x"], halfClose: true)
                    names.append(String(response.text.prefix(while: { $0 != ":" })))
                }
                #expect(Set(names) == ["e0", "e1", "e2"])
                let hold = try await backends[0].stopHoldingPort()
                defer { hold.close() }
                for attempt in 0..<4 {
                    let response = try await RawClient.exchange(port: port, ["y"], halfClose: true)
                    #expect(response.text.hasSuffix(":y|bye"), "attempt \(attempt): \(response.text)")
                    #expect(!response.text.hasPrefix("e0"))
                }
            }
        }
    }

    /// A PROXY protocol header goes to the backend before the client's bytes, and the backend's byte counters
    /// count the client's and the backend's bytes (not the header).
    @Test(arguments: TCPEngine.allCases)
    func aProxyProtocolHeaderGoesFirstAndTheBytesAreCounted(engine: TCPEngine) async throws {
        try await withEchoBackends(1) { backends in
            var c = try configuration(backends, balance: .roundRobin, engine: engine)
            c.proxyProtocol = .v1
            try await ProxyHarness.withProxy(c) { server, port in
                let response = try await RawClient.exchange(port: port, ["hello"], halfClose: true)
                #expect(response.text.hasPrefix("e0:PROXY TCP4 127.0.0.1 127.0.0.1 ") && response.text.hasSuffix("\r\nhello|bye"),
                        "\(response.text.debugDescription)")
                // The pair's counts reach the counters by the time it is closed; the proxy may close it just after
                // the client saw the end.
                func counter(_ name: String) -> Int? {
                    let text = server.metrics.registry.emitToString()
                    let line = text.split(separator: "\n").first { $0.hasPrefix(name + "{") && $0.contains(backends[0].address) }
                    return line.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
                }
                let deadline = ContinuousClock.now.advanced(by: .seconds(5))
                while counter("concord_proxy_backend_bytes_received_total") != response.text.utf8.count && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(counter("concord_proxy_backend_bytes_sent_total") == 5)
                #expect(counter("concord_proxy_backend_bytes_received_total") == response.text.utf8.count)
            }
        }
    }

    /// A backend that answers and then resets the connection (it closes with the request unread): the answer, queued before the reset, reaches the client whole. The direct engine used to
    /// close the pair on the error event, and 9 of 20 such clients got nothing and a clean end (a probe).
    @Test(arguments: TCPEngine.allCases)
    func anAnswerSentJustBeforeAResetReachesTheClient(engine: TCPEngine) async throws {
        let answer = String(repeating: "a", count: 20_000)
        let backend = try AnswerThenReset(answer: answer, connections: 20)  // the health check connects too
        defer { backend.stop() }
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: backend.port)], mode: .tcp, balance: .roundRobin)
        c.tcpEngine = engine
        c.health = ProxyHarness.quietHealth
        try await ProxyHarness.withProxy(c) { _, port in
            for attempt in 0..<10 {
                let response = try await RawClient.exchange(port: port, ["request"])
                #expect(response.text.utf8.count == answer.utf8.count, "attempt \(attempt): \(response.text.utf8.count) bytes")
            }
        }
    }

    /// A proxy (`lingeringTimeout` 0.5 s) in front of an ``AnswerThenReset`` backend whose answers of `size` bytes
    /// are all delivered before its reset.
    private func withAnswerThenReset(size: Int, engine: TCPEngine, _ body: (ProxyServer, Int) async throws -> Void) async throws {
        let backend = try AnswerThenReset(answer: String(repeating: "b", count: size), connections: 8, deliverFirst: true)
        defer { backend.stop() }
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: backend.port)], mode: .tcp, balance: .roundRobin)
        c.tcpEngine = engine
        c.health = ProxyHarness.quietHealth
        c.limits.lingeringTimeout = 0.5
        try await ProxyHarness.withProxy(c, body)
    }

    /// A backend answers before the client's upload is over and closes with the upload unread (an early 413 to a
    /// large body): the whole answer reaches a client that reads it slowly, although it is larger than what the
    /// sockets between them buffer. Closing the client socket with the client's bytes unread sends a reset, and the
    /// kernel drops what of the answer it still holds: both engines delivered 128–225 KB of a 2-MB answer that
    /// way. They now close the way nginx does (a lingering close: the client's bytes are read and dropped until its
    /// EOF, or until it is quiet for `lingeringTimeout`).
    @Test(arguments: TCPEngine.allCases)
    func anEarlyAnswerToAnUploadReachesASlowReaderWhole(engine: TCPEngine) async throws {
        let size = 2 * 1024 * 1024
        try await withAnswerThenReset(size: size, engine: engine) { server, port in
            for attempt in 0..<2 {
                let received = await SlowUploader.run(port: port, expecting: size)
                #expect(received == size, "attempt \(attempt): \(received) of \(size) bytes")
            }
            // A client that reads the answer and then neither sends nor closes: the proxy closes its connection once
            // it has been quiet for lingeringTimeout.
            let quiet = await SlowUploader.run(port: port, expecting: size, thenWaitForTheEnd: true)
            #expect(quiet == size, "\(quiet): -1 is a connection still open after 1.5 s without a byte")
            var open = server.openClientConnections
            for _ in 0..<50 where open > 0 {
                try await Task.sleep(for: .milliseconds(100))
                open = server.openClientConnections
            }
            #expect(open == 0, "lingering connections left open")
        }
    }

    /// A backend answers 4 MB and resets (its FIN, then a reset: the rest of the request unread) to a client that
    /// sent its request and then nothing — no EOF — and reads slowly (≈ 2 MB/s): all of it arrives, and the proxy
    /// closes the connection once the client has been quiet for lingeringTimeout after it. A probe found the nio
    /// engine's quiet timer running while the answer was still being written (18.5 of 20 MB arrived, then a clean
    /// EOF), and the direct engine not noticing the reset with nothing to send (the pair stayed until the idle
    /// timeout).
    @Test(arguments: TCPEngine.allCases)
    func aQuietClientGetsAllOfASlowAnswerThatEndsInAResetAndIsClosedAfterIt(engine: TCPEngine) async throws {
        let size = 4 * 1024 * 1024
        try await withAnswerThenReset(size: size, engine: engine) { _, port in
            let received = await SlowUploader.run(port: port, expecting: size, thenWaitForTheEnd: true, upload: false, readPause: 2_000)
            #expect(received == size, "\(received) of \(size) bytes (-1: the connection was still open 1.5 s after the answer)")
        }
    }

    /// `limits.maxConnections`: a client past it is closed on accept; the others are served.
    @Test(arguments: TCPEngine.allCases)
    func maxConnectionsClosesTheClientPastIt(engine: TCPEngine) async throws {
        try await withEchoBackends(1) { backends in
            var c = try configuration(backends, balance: .roundRobin, engine: engine)
            c.limits.maxConnections = 2
            try await ProxyHarness.withProxy(c) { _, port in
                let clients = try HeldConnections.open(3, port: port)
                defer { for fd in clients { close(fd) } }
                var greeted = 0, closed = 0
                for fd in clients {
                    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    guard poll(&poller, 1, 5_000) == 1 else { continue }
                    var bytes = [UInt8](repeating: 0, count: 64)
                    let count = read(fd, &bytes, bytes.count)
                    if count == 0 || (count < 0 && errno == ECONNRESET) { closed += 1 }
                    if count > 0 && String(decoding: bytes.prefix(count), as: UTF8.self).hasPrefix("e0:") { greeted += 1 }
                }
                #expect(greeted == 2 && closed == 1, "greeted \(greeted), closed \(closed)")
            }
        }
    }

    /// The direct engine's buffers (32 KiB per pair) outlive a peak of connections only for the 64 free slots per
    /// loop reused next; the others are released within a second or two (they were kept for good).
    @Test func theDirectEngineReleasesTheBuffersOfAPeak() async throws {
        try await withEchoBackends(1) { backends in
            var c = try configuration(backends, balance: .roundRobin)
            c.eventLoops = 2
            try await ProxyHarness.withProxy(c) { server, port in
                let pairBytes = 2 * TCPForwardingLoop.bufferSize
                let peak = 300
                let clients = try HeldConnections.open(peak, port: port)
                var held = 0
                for _ in 0..<100 {
                    held = server.directEngineBufferBytes
                    if held >= peak * pairBytes { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(held >= peak * pairBytes, "\(held / pairBytes) pairs' buffers at the peak")
                for fd in clients { close(fd) }
                let kept = 2 * TCPForwardingLoop.spareBuffers * pairBytes  // two loops
                for _ in 0..<60 {
                    held = server.directEngineBufferBytes
                    if held <= kept { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(held <= kept, "\(held / pairBytes) pairs' buffers kept after the peak")
                #expect(held > 0, "spare buffers are kept for the next connections")
                // The same figure in /metrics.
                let exposition = server.metrics.registry.emitToString()
                let gauge = exposition.firstMatch(of: /concord_proxy_tcp_buffer_bytes (\d+)/).flatMap { Int($0.1) }
                #expect(gauge == held, "\(exposition.split(separator: "\n").filter { $0.contains("buffer") })")
            }
        }
    }

    /// What the direct engine does not do (TLS, here to the backends) runs on the nio engine; a reload that asks for
    /// it while the direct engine runs is refused, changing nothing. Reloads that turn on accepting the PROXY
    /// protocol or the per-backend queue apply.
    @Test func whatTheDirectEngineDoesNotDoRunsOnNIOAndAReloadAskingForItIsRefused() async throws {
        try await withEchoBackends(1) { backends in
            var encrypted = try configuration(backends, balance: .roundRobin)
            encrypted.backendTLS = BackendTLSConfiguration()
            try await ProxyHarness.withProxy(encrypted) { server, _ in
                #expect(server.tcpEngineInUse == .nio)
            }
            let direct = try configuration(backends, balance: .roundRobin)
            try await ProxyHarness.withProxy(direct) { server, port in
                #expect(server.tcpEngineInUse == .direct)
                var reloaded = direct
                reloaded.backendTLS = BackendTLSConfiguration()
                reloaded.listen = server.configuration.listen
                var refused = false
                do { try server.apply(reloaded) } catch { refused = true }
                #expect(refused)
                #expect(server.configuration.backendTLS == nil)
                var queued = direct
                queued.limits.maxRequestsPerBackend = 4
                queued.listen = server.configuration.listen
                try server.apply(queued)
                #expect(server.configuration.limits.maxRequestsPerBackend == 4)
                let answer = try await RawClient.exchange(port: port, ["q"], halfClose: true)
                #expect(answer.text == "e0:q|bye")
                // Accepting the PROXY protocol is something it does: that reload applies.
                var accepting = direct
                accepting.acceptProxyProtocol = true
                accepting.listen = server.configuration.listen
                try server.apply(accepting)
                #expect(server.configuration.acceptProxyProtocol)
                let proxied = try await RawClient.exchange(port: port, ["PROXY TCP4 203.0.113.9 10.0.0.1 5555 443\r\np"], halfClose: true)
                #expect(proxied.text == "e0:p|bye")
                try server.apply(direct)
                let after = try await RawClient.exchange(port: port, ["d"], halfClose: true)
                #expect(after.text == "e0:d|bye")
            }
        }
    }

    @Test func proxyProtocolHeaders() {
        var v1 = ByteBufferAllocator().buffer(capacity: 64)
        let src = try! SocketAddress(ipAddress: "10.0.0.1", port: 1234)
        let dst = try! SocketAddress(ipAddress: "10.0.0.2", port: 80)
        ProxyProtocolHeader.encode(.v1, source: src, destination: dst, into: &v1)
        #expect(String(buffer: v1) == "PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\n")
        var v2 = ByteBufferAllocator().buffer(capacity: 64)
        ProxyProtocolHeader.encode(.v2, source: src, destination: dst, into: &v2)
        let bytes = Array(v2.readableBytesView)
        #expect(Array(bytes.prefix(12)) == ProxyProtocolHeader.v2Signature)
        #expect(bytes[12] == 0x21 && bytes[13] == 0x11)
        #expect(bytes.count == 16 + 12)
        #expect(Array(bytes[16..<20]) == [10, 0, 0, 1])
    }
}

/// A blocking backend on a thread of its own: per connection it reads one byte of the request, sends `answer` and
/// closes with the rest of the request unread — so the kernel sends a reset right after the answer (what a server
/// does that answers early, e.g. 413, and closes). Serves `connections`, then stops.
private final class AnswerThenReset: Sendable {
    let port: Int
    private let listener: Int32

    /// `deliverFirst`: after sending, wait (at most 10 s) until the answer has left this socket — so the reset
    /// loses none of it between backend and proxy.
    init(answer: String, connections: Int, deliverFirst: Bool = false) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound, listen(listener, 16) == 0 else { throw ChannelError.inappropriateOperationForState }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = listener
        let bytes = Array(answer.utf8)
        Thread.detachNewThread {
            for _ in 0..<connections {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                var first: UInt8 = 0
                guard recv(fd, &first, 1, 0) == 1 else {
                    close(fd)  // a health check
                    continue
                }
                var sent = 0
                while sent < bytes.count {
                    let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                    if count <= 0 { break }
                    sent += count
                }
                if deliverFirst {
                    shutdown(fd, Int32(SHUT_WR))
                    var unsent: Int32 = 1
                    for _ in 0..<1_000 where ioctl(fd, UInt(TIOCOUTQ), &unsent) == 0 && unsent > 0 { usleep(10_000) }
                }
                close(fd)
            }
        }
    }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
}

/// A client that sends a request and then keeps uploading (on a thread of its own, ≤ 16 MB, until a send fails)
/// while it reads the answer slowly — 4 KiB, then a pause — until `expecting` bytes, the end, an error or 20 s.
private enum SlowUploader {
    /// `thenWaitForTheEnd`: the upload stops (without EOF) once the answer is in, and -1 is returned if the proxy
    /// has not closed the connection 1.5 s later.
    /// `upload: false`: the client sends its request and nothing more (no EOF either); `readPause`: microseconds
    /// between reads of 4 KiB (2,000: ≈ 2 MB/s).
    static func run(port: Int, expecting: Int, thenWaitForTheEnd: Bool = false, upload: Bool = true,
                    readPause: useconds_t = 200) async -> Int {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: exchange(port: port, expecting: expecting, thenWaitForTheEnd: thenWaitForTheEnd,
                                                        upload: upload, readPause: readPause))
            }
        }
    }

    private static func exchange(port: Int, expecting: Int, thenWaitForTheEnd: Bool, upload: Bool, readPause: useconds_t) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected, send(fd, "request", 7, Int32(MSG_NOSIGNAL)) == 7 else {
            close(fd)
            return -1
        }
        let uploadDone = DispatchSemaphore(value: 0)
        let answered = NIOLockedValueBox(false)
        Thread.detachNewThread {
            let chunk = [UInt8](repeating: 0x75, count: 64 * 1024)
            var total = 0
            while upload && total < 16 * 1024 * 1024 && !answered.withLockedValue({ $0 }) {
                let count = chunk.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                if count <= 0 { break }
                total += count
            }
            uploadDone.signal()
        }
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(20)
        while received < expecting && Date() < deadline {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += count
            usleep(readPause)
        }
        if thenWaitForTheEnd {
            answered.withLockedValue { $0 = true }
            _ = uploadDone.wait(timeout: .now() + 10)
            // Quiet for three lingeringTimeouts (0.5 s): the proxy has closed by now, so a byte sent gets a reset
            // and a later send fails. While it lingers, they all go (and are dropped).
            usleep(1_500_000)
            var closed = false
            for _ in 0..<3 {
                if send(fd, "x", 1, Int32(MSG_NOSIGNAL)) < 0 {
                    closed = true
                    break
                }
                usleep(50_000)
            }
            close(fd)
            return closed ? received : -1
        }
        shutdown(fd, Int32(SHUT_RDWR))
        _ = uploadDone.wait(timeout: .now() + 10)
        close(fd)
        return received
    }
}
