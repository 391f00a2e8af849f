import ArgumentParser
import ConcordHummingbird
import ConcordSessions
import Hummingbird
import Logging

/// `concord bench sessions`: what sessions cost — sealing, the memory store, and the middleware in a real
/// Hummingbird router, each compared with its peer in the same run.
struct BenchSessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "Measure sealed-cookie seal+open time, memory-store throughput and the session middleware's overhead.",
        discussion: """
            Sealing: ns per seal+open of 256 B, 1 KiB and 3 KiB payloads with AES-256-GCM and ChaCha20-Poly1305.
            Store: load+save pairs per second on a MemorySessionStore holding --sessions sessions.
            Middleware: requests per second through one Hummingbird router without and with the session middleware
            (memory store, a logged-in session read by every request), interleaved in rounds; the ratio is the
            overhead. Requests are handed to the router's responder in process (no sockets), so the ratio shows the
            middleware's own cost, not diluted by network time.
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

    @Option(help: "Rounds of the middleware benchmark (the median is reported).")
    var rounds = 5

    func validate() throws {
        guard sealIterations > 0, storeIterations > 0, sessions > 0, requests > 0, concurrency > 0, rounds > 0 else {
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
        let plain = Self.router(middleware: nil).buildResponder()
        let withSessions = Self.router(middleware: ConcordSessionMiddleware(manager: manager)).buildResponder()

        // One logged-in session, as a browser would present it.
        let login = try await withSessions.respond(to: Self.request("/login", cookie: nil), context: BenchContext(source: .init()))
        guard let setCookie = login.headers[values: .setCookie].first,
            let pair = setCookie.split(separator: ";").first
        else { throw ValidationError("login issued no session cookie") }
        let cookie = String(pair)

        var plainRates: [Double] = []
        var sessionRates: [Double] = []
        for _ in 0..<rounds {
            plainRates.append(try await requestRate(plain, cookie: cookie))
            sessionRates.append(try await requestRate(withSessions, cookie: cookie))
        }
        let plainRate = plainRates.sorted()[rounds / 2]
        let sessionRate = sessionRates.sorted()[rounds / 2]
        print("hummingbird handler, in-process responder (\(requests) requests × \(rounds) rounds, \(concurrency) tasks, median)")
        print("  without session middleware   \(Int(plainRate)) req/s")
        print("  with session middleware      \(Int(sessionRate)) req/s  (memory store, session read each request)")
        print("  ratio with/without           \(String(format2: sessionRate / plainRate))  overhead \(String(format2: (1 - sessionRate / plainRate) * 100))%")
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

    private static func router(middleware: ConcordSessionMiddleware<BenchContext>?) -> Router<BenchContext> {
        let router = Router(context: BenchContext.self)
        if let middleware { router.add(middleware: middleware) }
        router.get("/me") { _, context in context.session.value.name ?? "anonymous" }
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
