import ArgumentParser
import ConcordHummingbird
import ConcordSessions
import Hummingbird
import Logging
import Synchronization

/// `concord bench sessions`: what sessions cost — sealing, the memory store, and the middleware in a real
/// Hummingbird router, each compared with its peer in the same run.
struct BenchSessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "Measure sealed-cookie seal+open time, memory-store throughput and the session middleware's overhead.",
        discussion: """
            Sealing: ns per seal+open of 256 B, 1 KiB and 3 KiB payloads with AES-256-GCM and ChaCha20-Poly1305.
            Store: load+save pairs per second on a MemorySessionStore holding --sessions sessions.
            Middleware: requests per second through one Hummingbird router without and with the session middleware \
            (memory store, a logged-in session read by every request), interleaved in rounds; the ratio is the \
            overhead. Requests are handed to the router's responder in process (no sockets), so the ratio shows the \
            middleware's own cost, not diluted by network time.
            Middleware over HTTP: the same two routers served by real Hummingbird servers on loopback, driven by wrk \
            (keep-alive, the session cookie on every request), --http-seconds per round, interleaved; this is what an \
            app sees. Needs wrk (apt-get install -y wrk); without it that part is left out with a note.
            """
    )

    @Option(help: "Seal+open rounds per payload size.")
    var sealIterations = 20_000

    @Option(help: "Load+save pairs on the memory store.")
    var storeIterations = 200_000

    @Option(help: "Sessions held by the memory store during the store benchmark.")
    var sessions = 10_000

    @Option(help: "Requests per round and router in the middleware benchmark.")
    var requests = 100_000

    @Option(help: "Concurrent tasks sending requests.")
    var concurrency = 2

    @Option(help: "Rounds of the middleware benchmarks (the median is reported).")
    var rounds = 9

    // Many short rounds rather than a few long ones: over HTTP one round varies by ±5 % on a 2-core machine
    // (wrk and both servers share the cores), and the median of nine is steadier than that of five.
    @Option(help: "Seconds of wrk per round and server in the HTTP middleware benchmark (0 leaves it out).")
    var httpSeconds = 2

    @Option(help: "wrk connections in the HTTP middleware benchmark.")
    var httpConnections = 16

    func validate() throws {
        guard sealIterations > 0, storeIterations > 0, sessions > 0, requests > 0, concurrency > 0, rounds > 0,
            httpSeconds >= 0, httpConnections > 0
        else {
            throw ValidationError("all counts must be positive")
        }
    }

    func run() async throws {
        #if DEBUG
        print("warning: debug build; use `swift run -c release concord bench sessions` for meaningful figures")
        #endif
        try benchSealing()
        try await benchMemoryStore()
        try await benchMiddleware()
        if httpSeconds > 0 { try await benchMiddlewareOverHTTP() }
    }

    // MARK: Sealing

    private func benchSealing() throws {
        print("sealed cookies (seal + open, ns per operation pair)")
        print("  payload   " + SessionSealingAlgorithm.allCases.map { $0.rawValue.padding(20) }.joined())
        let ring = SessionKeyRing.random()
        let now = SessionWallClock.system.now
        for size in [256, 1024, 3072] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            var line = "  \(("\(size) B").padding(10))"
            for algorithm in SessionSealingAlgorithm.allCases {
                let sealer = SessionSealer(keyRing: ring, configuration: .init(algorithm: algorithm, maximumCookieSize: 8192))
                var opened = 0
                let elapsed = try measure {
                    for _ in 0..<sealIterations {
                        let cookie = try sealer.seal(payload, expiresAt: now + 60_000)
                        if case .success(let bytes) = sealer.open(cookie, now: now) { opened += bytes.count }
                    }
                }
                guard opened == size * sealIterations else { throw ValidationError("seal/open round trip failed") }
                line += "\(Int(elapsed.nanoseconds / Double(sealIterations))) ns".padding(20)
            }
            print(line)
        }
    }

    // MARK: Memory store

    private func benchMemoryStore() async throws {
        let store = MemorySessionStore(configuration: .init(maximumSessions: sessions * 2))
        let ids = (0..<sessions).map { _ in SessionID.generate() }
        let payload = [UInt8](repeating: 0x42, count: 512)
        for id in ids {
            _ = try await store.save(StoredSession(id: id, payload: payload), ttl: .seconds(600), expectedVersion: nil)
        }
        let perTask = storeIterations / concurrency
        let elapsed = try await measureAsync {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<concurrency {
                    group.addTask {
                        for index in 0..<perTask {
                            let id = ids[(index &* 7919 &+ task) % ids.count]
                            guard let record = try await store.load(id: id) else { throw ValidationError("lost \(id)") }
                            // Versioned writes from several tasks can conflict; that is part of the cost measured.
                            _ = try? await store.save(record, ttl: .seconds(600), expectedVersion: record.version)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let pairs = Double(perTask * concurrency)
        print("memory store (\(sessions) sessions, 512 B payloads, \(concurrency) tasks)")
        print("  load+save pairs/s   \(Int(pairs / elapsed.seconds))")
    }

    // MARK: Middleware

    private func benchMiddleware() async throws {
        let store = MemorySessionStore()
        let manager = try SessionManager<BenchSession>(configuration: .init(strategy: .store(store)))
        let plain = Self.router(middleware: nil, context: BenchContext.self).buildResponder()
        let passThrough = Self.router(middleware: nil, passThrough: true, context: BenchContext.self).buildResponder()
        let withSessions = Self.router(middleware: ConcordSessionMiddleware(manager: manager), context: BenchContext.self).buildResponder()

        // One logged-in session, as a browser would present it.
        let login = try await withSessions.respond(to: Self.request("/login", cookie: nil), context: BenchContext(source: .init()))
        guard let setCookie = login.headers[values: .setCookie].first,
            let pair = setCookie.split(separator: ";").first
        else { throw ValidationError("login issued no session cookie") }
        let cookie = String(pair)

        var plainRates: [Double] = []
        var passThroughRates: [Double] = []
        var sessionRates: [Double] = []
        for _ in 0..<rounds {
            plainRates.append(try await requestRate(plain, cookie: cookie))
            passThroughRates.append(try await requestRate(passThrough, cookie: cookie))
            sessionRates.append(try await requestRate(withSessions, cookie: cookie))
        }
        let plainRate = plainRates.median
        let passThroughRate = passThroughRates.median
        let sessionRate = sessionRates.median
        print("hummingbird handler, in-process responder (\(requests) requests × \(rounds) rounds, \(concurrency) tasks, median)")
        print("  without session middleware   \(Int(plainRate)) req/s")
        print("  with an empty middleware     \(Int(passThroughRate)) req/s  (Hummingbird's own cost of one middleware, for scale)")
        print("  with session middleware      \(Int(sessionRate)) req/s  (memory store, session read each request)")
        print("  ratio with/without           \(String(format2: sessionRate / plainRate))  overhead \(String(format2: (1 - sessionRate / plainRate) * 100))%")
    }

    private func benchMiddlewareOverHTTP() async throws {
        let wrk: ExternalTool
        do {
            wrk = try ExternalTool("wrk", installHint: "apt-get install -y wrk")
        } catch {
            print("hummingbird over HTTP: left out — \(error)")
            return
        }
        let store = MemorySessionStore()
        let manager = try SessionManager<BenchSession>(configuration: .init(strategy: .store(store)))
        let login = try await Self.router(middleware: ConcordSessionMiddleware(manager: manager), context: BenchContext.self).buildResponder()
            .respond(to: Self.request("/login", cookie: nil), context: BenchContext(source: .init()))
        guard let cookie = login.headers[values: .setCookie].first?.split(separator: ";").first else {
            throw ValidationError("login issued no session cookie")
        }
        var logger = Logger(label: "concord.bench")
        // Cancelling the servers at the end makes HummingbirdCore log its shutdown as errors; a failed request
        // during the measurement shows in wrk's output instead (non-2xx → the bench fails).
        logger.logLevel = .critical
        let servers = [
            Self.router(middleware: nil, context: ConcordRequestContext<BenchSession>.self),
            Self.router(middleware: ConcordSessionMiddleware(manager: manager), context: ConcordRequestContext<BenchSession>.self),
        ].map { router in
            let port = PortPromise()
            let application = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { port.fulfil($0.localAddress?.port ?? 0) }, logger: logger)
            return (application, port)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (application, _) in servers { group.addTask { try await application.runService() } }
            var ports: [Int] = []
            for (_, port) in servers { ports.append(await port.value) }
            var rates: [[Double]] = [[], []]
            for _ in 0..<rounds {
                for (index, port) in ports.enumerated() {
                    let output = try await wrk.run([
                        "-t", "1", "-c", String(httpConnections), "-d", "\(httpSeconds)s", "-H", "Cookie: \(cookie)",
                        "http://127.0.0.1:\(port)/me",
                    ])
                    guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
                        let rate = Double(line.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces))
                    else { throw ValidationError("could not read wrk's output: \(output)") }
                    if output.contains("Non-2xx") { throw ValidationError("wrk saw error responses: \(output)") }
                    rates[index].append(rate)
                }
            }
            group.cancelAll()
            let plainRate = rates[0].median
            let sessionRate = rates[1].median
            print("hummingbird over HTTP on loopback (wrk, \(httpConnections) connections, \(httpSeconds) s × \(rounds) rounds, median)")
            print("  without session middleware   \(Int(plainRate)) req/s")
            print("  with session middleware      \(Int(sessionRate)) req/s  (memory store, session read each request)")
            print("  ratio with/without           \(String(format2: sessionRate / plainRate))  overhead \(String(format2: (1 - sessionRate / plainRate) * 100))%")
        }
    }

    private func requestRate(_ responder: RouterResponder<BenchContext>, cookie: String) async throws -> Double {
        let perTask = requests / concurrency
        let elapsed = try await measureAsync {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        for _ in 0..<perTask {
                            let response = try await responder.respond(to: Self.request("/me", cookie: cookie), context: BenchContext(source: .init()))
                            guard response.status == .ok else {
                                throw ValidationError("unexpected response \(response.status)")
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        return Double(perTask * concurrency) / elapsed.seconds
    }

    private static func router<Context: ConcordSessionRequestContext>(
        middleware: ConcordSessionMiddleware<Context>?, passThrough: Bool = false, context: Context.Type
    ) -> Router<Context> where Context.Session == BenchSession {
        let router = Router(context: Context.self)
        if let middleware { router.add(middleware: middleware) }
        if passThrough { router.add(middleware: PassThroughMiddleware<Context>()) }
        // With the middleware every request must present the logged-in session: a lost one is a 401, which the
        // benchmarks count as a failure instead of measuring anonymous requests.
        let requireSession = middleware != nil
        router.get("/me") { _, context in
            guard let name = context.session.value.name else {
                if requireSession { throw HTTPError(.unauthorized) }
                return "anonymous"
            }
            return name
        }
        router.get("/login") { _, context in
            context.session.logIn(userID: "bench")
            context.session.update { $0.name = "bench" }
            return "ok"
        }
        return router
    }

    private static func request(_ path: String, cookie: String?) -> Request {
        var fields = HTTPFields()
        if let cookie { fields[.cookie] = cookie }
        return Request(head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: path, headerFields: fields),
                       body: RequestBody(buffer: ByteBuffer()))
    }
}

/// The benchmark's session value.
struct BenchSession: SessionValue {
    var name: String?
    var visits = 0
}

/// A request context built without a channel, so requests can be handed straight to a responder.
struct BenchContext: ConcordSessionRequestContext {
    struct Source: RequestContextSource {
        var logger = Logger(label: "concord.bench")
    }

    var coreContext: CoreRequestContextStorage
    let session = SessionHandle<BenchSession>()

    init(source: Source) {
        self.coreContext = .init(source: source)
    }
}

/// The port a server reports once it listens, awaited by the benchmark.
private final class PortPromise: Sendable {
    private let state = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))

    func fulfil(_ port: Int) {
        let waiters = state.withLock { state in
            state.port = port
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    var value: Int {
        get async {
            await withCheckedContinuation { continuation in
                let port: Int? = state.withLock { state in
                    if let port = state.port { return port }
                    state.waiters.append(continuation)
                    return nil
                }
                if let port { continuation.resume(returning: port) }
            }
        }
    }
}

private func measure(_ body: () throws -> Void) rethrows -> Duration {
    let start = ContinuousClock.now
    try body()
    return ContinuousClock.now - start
}

private func measureAsync(_ body: () async throws -> Void) async rethrows -> Duration {
    let start = ContinuousClock.now
    try await body()
    return ContinuousClock.now - start
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    fileprivate var nanoseconds: Double { seconds * 1e9 }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }

    fileprivate init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let sign = hundredths < 0 ? "-" : ""
        let magnitude = abs(hundredths)
        self = "\(sign)\(magnitude / 100).\(magnitude % 100 < 10 ? "0" : "")\(magnitude % 100)"
    }
}

/// A middleware that only calls the next responder: what any middleware costs in Hummingbird, for scale.
struct PassThroughMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await next(request, context)
    }
}
