import Foundation
import NIOCore
import NIOHTTP1

/// One simulated browser: its own cookie jar and source address, logs in, then views its profile, adds to and
/// checks its cart at a jittered pace until cancelled. It notices a lost session (sent to the login page, or the
/// cart emptied under it), counts it, and logs in again.
struct VirtualUser {
    /// Shared by every user of a run.
    struct Environment: Sendable {
        var recorder: LabRecorder
        var entry: LabEntryPoint
        var thinkTime: Duration
        var requestTimeout: TimeAmount
        var parallelRequests: Int
        var startDelay: Duration
    }

    let index: Int
    let name: String
    /// 127.0.x.y, distinct per user (x from 1, so 127.0.0.1 stays the servers').
    let sourceAddress: String
    let environment: Environment

    private var jar = CookieJar()
    private var loggedIn = false
    /// Cart items the app acknowledged since the last check.
    private var expectedCart: Set<String> = []
    private var nextItem = 0
    private var turn = 0
    private var connections: [Int: LabHTTPConnection] = [:]
    private var burstPhase = -1

    init(index: Int, environment: Environment) {
        self.index = index
        self.name = "user\(index)"
        self.sourceAddress = "127.0.\(1 + index / 250).\(1 + index % 250)"
        self.environment = environment
        self.turn = index
    }

    mutating func run() async {
        try? await Task.sleep(for: environment.startDelay)
        while !Task.isCancelled {
            if !loggedIn {
                await logIn()
            } else if environment.recorder.phase.kind == .parallel, burstPhase != environment.recorder.phaseIndex {
                burstPhase = environment.recorder.phaseIndex
                await parallelBurst()
            } else {
                switch Int.random(in: 0..<10) {
                case 0..<4: await viewProfile()
                case 4..<8: await addToCart()
                default: await checkCart()
                }
            }
            let pause = environment.thinkTime * Double.random(in: 0.5...1.5)
            do { try await Task.sleep(for: pause) } catch { break }
        }
        for connection in connections.values { await connection.close() }
    }

    // MARK: Actions

    private mutating func logIn() async {
        let body = "user=\(name)&password=concord"
        guard let response = await exchange(.POST, "/login?user=\(name)", body: body) else { return }
        if response.status == 303 || response.status == 302, response.location?.hasPrefix("/profile") == true {
            loggedIn = true
            expectedCart = []
        }
    }

    private mutating func viewProfile() async {
        guard let response = await exchange(.GET, "/profile") else { return }
        if isSentToLogin(response) { lostSession() }
    }

    private mutating func addToCart() async {
        let item = newItem()
        guard let response = await exchange(.POST, "/cart/add", body: "item=\(item)") else { return }
        if isSentToLogin(response) {
            lostSession()
        } else if response.status == 303 || response.status == 302 || response.status == 200 {
            expectedCart.insert(item)
        }
    }

    private mutating func checkCart(lostItemsPhase: Int? = nil) async {
        guard let response = await exchange(.GET, "/cart", accept: "application/json") else { return }
        if isSentToLogin(response) {
            lostSession()
            return
        }
        guard response.status == 200, let cart = try? JSONDecoder().decode(CartView.self, from: Data(response.body.readableBytesView)) else {
            return
        }
        let missing = expectedCart.subtracting(cart.items)
        environment.recorder.recordLostCartItems(missing.count, phase: lostItemsPhase)
        expectedCart = []
    }

    /// Several cart additions at once, each on its own connection (as browser tabs do), all with the same
    /// cookies; then one cart check counts the additions that were acknowledged but did not survive.
    mutating func parallelBurst() async {
        let cookie = jar.header
        let items = (0..<environment.parallelRequests).map { _ in newItem() }
        let ports = items.indices.map { _ in nextPort() }
        let results = await withTaskGroup(of: (String, LabHTTPResponse?).self) { group in
            for (item, port) in zip(items, ports) {
                group.addTask { [self] in
                    environment.recorder.burstRequestStarted()
                    defer { environment.recorder.burstRequestEnded() }
                    guard let connection = await connect(port: port) else { return (item, nil) }
                    defer { Task { await connection.close() } }
                    // A fresh connection: nothing to resend.
                    let outcome = await exchange(on: connection, .POST, "/cart/add", cookie: cookie, body: "item=\(item)", accept: nil, resendable: false)
                    guard case .answered(let response) = outcome else { return (item, nil) }
                    return (item, response)
                }
            }
            var results: [(String, LabHTTPResponse?)] = []
            for await result in group { results.append(result) }
            return results
        }
        var sentToLogin = false
        for (item, response) in results {
            guard let response else { continue }
            jar.apply(setCookieHeaders: response.headers["set-cookie"])
            if isSentToLogin(response) {
                sentToLogin = true
            } else if response.status == 303 || response.status == 302 || response.status == 200 {
                expectedCart.insert(item)
            }
        }
        if sentToLogin {
            lostSession()
        } else {
            // Items the burst lost count for the burst's phase, even if the check ends after it.
            await checkCart(lostItemsPhase: burstPhase)
        }
    }

    // MARK: HTTP

    private struct CartView: Decodable {
        var items: [String]
    }

    private func isSentToLogin(_ response: LabHTTPResponse) -> Bool {
        (response.status == 302 || response.status == 303) && response.location?.hasPrefix("/login") == true
    }

    private mutating func lostSession() {
        environment.recorder.recordLostSession(user: index)
        loggedIn = false
        expectedCart = []
    }

    private mutating func newItem() -> String {
        nextItem += 1
        return "\(name)-item\(nextItem)"
    }

    private mutating func nextPort() -> Int {
        turn += 1
        return environment.entry.port(turn: turn)
    }

    /// One request on the user's keep-alive connection to the next port; `nil` when it got no response.
    ///
    /// Like a browser, a request whose *reused* keep-alive connection closes before any response (a node that stops
    /// closes its idle connections; the request may have crossed that close) is resent once on a new connection,
    /// and counted as resent; only a failed resend is a failure. A fresh connection's failure is not resent.
    mutating func exchange(_ method: HTTPMethod, _ path: String, body: String? = nil, accept: String? = nil) async -> LabHTTPResponse? {
        let port = nextPort()
        var connection = connections[port]
        let reused = connection?.isActive == true
        if !reused {
            connection = await connect(port: port)
            connections[port] = connection
        }
        guard let connection else { return nil }
        var outcome = await exchange(on: connection, method, path, cookie: jar.header, body: body, accept: accept, resendable: reused)
        if case .closedBeforeResponse = outcome {
            environment.recorder.recordResend(user: index)
            guard let fresh = await connect(port: port) else {
                connections[port] = nil
                return nil
            }
            connections[port] = fresh
            outcome = await exchange(on: fresh, method, path, cookie: jar.header, body: body, accept: accept, resendable: false)
        }
        guard case .answered(let response) = outcome else { return nil }
        jar.apply(setCookieHeaders: response.headers["set-cookie"])
        return response
    }

    /// What one exchange came to.
    private enum Outcome {
        case answered(LabHTTPResponse)
        /// Recorded as a failure (or cut short by the end of the run).
        case failed
        /// A reused connection closed before any response: not recorded; the caller resends.
        case closedBeforeResponse
    }

    private func connect(port: Int) async -> LabHTTPConnection? {
        do {
            return try await LabHTTPConnection.connect(port: port, sourceAddress: sourceAddress, timeout: environment.requestTimeout)
        } catch {
            if !Task.isCancelled && !(error is CancellationError) {
                environment.recorder.recordTransportFailure(user: index, reason: "connect failed")
            }
            return nil
        }
    }

    private func exchange(
        on connection: LabHTTPConnection, _ method: HTTPMethod, _ path: String, cookie: String?, body: String?, accept: String?,
        resendable: Bool
    ) async -> Outcome {
        var headers = HTTPHeaders()
        var cookieBytes = 0
        if let cookie {
            headers.add(name: "cookie", value: cookie)
            cookieBytes = "cookie: \(cookie)\r\n".utf8.count
        }
        if let accept { headers.add(name: "accept", value: accept) }
        let started = ContinuousClock.now
        do {
            let response = try await connection.send(
                method: method, path: path, headers: headers, body: body, timeout: environment.requestTimeout)
            let elapsed = started.duration(to: .now)
            let micros = UInt64(max(0, elapsed.components.seconds)) * 1_000_000 + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000_000))
            let failed = response.status >= 500 || response.status == 409
            environment.recorder.record(
                user: index, microseconds: micros, failed: failed, failure: failed ? "HTTP \(response.status)" : nil,
                node: response.node, internetBytes: cookieBytes + response.headBytes)
            return .answered(response)
        } catch {
            await connection.close()
            // A request cut short by the end of the run (users are cancelled after the last phase) is not a
            // failure of the cluster.
            if Task.isCancelled || error is CancellationError { return .failed }
            if resendable, (error as? LabError)?.isClosedBeforeResponse == true { return .closedBeforeResponse }
            let reason = "\(error)".contains("timed out") ? "timeout" : "connection error"
            environment.recorder.recordTransportFailure(user: index, reason: reason)
            return .failed
        }
    }
}
