import ConcordApp
import ConcordSessions
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(3))) struct ConcordAppServerTests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
    static let node = HTTPField.Name("X-Concord-Node")!

    private func app(_ strategy: ConcordAppConfiguration.Strategy = .local, key: String? = nil, node: String = "node-7",
                     secureCookies: Bool = false, compressCookies: Bool = false) throws -> some ApplicationProtocol
    {
        let configuration = ConcordAppConfiguration(
            nodeID: node, strategy: strategy, sessionKey: key, secureCookies: secureCookies, compressCookies: compressCookies)
        let backend = try AppSessionBackend.make(configuration: configuration, logger: .init(label: "test"))
        let router = try ConcordAppServer.makeRouter(
            configuration: configuration, sessions: backend.sessions, metricsText: { "concord_test_total 1\n" })
        return Application(router: router)
    }

    /// The `Cookie` header a browser would send back after `response`.
    private func cookies(from response: TestResponse) -> String {
        response.headers[values: .setCookie].compactMap { $0.split(separator: ";").first.map(String.init) }.joined(separator: "; ")
    }

    @Test func loginProfileCartLogout() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/login", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[Self.node] == "node-7")
                #expect(String(buffer: response.body).contains("<form method=\"post\" action=\"/login\">"))
            }
            try await client.execute(uri: "/profile", method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/login")
            }
            try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "user=alice&password=wrong")
            ) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[Self.node] == "node-7")
            }
            let cookie = try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "user=alice&password=concord")
            ) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/profile")
                #expect(response.headers[values: .setCookie].contains { $0.hasPrefix("concord_user=alice") })
                return cookies(from: response)
            }
            #expect(cookie.contains("concord_session="))
            try await client.execute(uri: "/profile", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("<strong id=\"user\">alice</strong>"))
            }
            for item in ["teapot", "kettle"] {
                try await client.execute(
                    uri: "/cart/add", method: .post, headers: [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "item=\(item)")
                ) { response in
                    #expect(response.status == .seeOther)
                    #expect(response.headers[.location] == "/cart")
                }
            }
            try await client.execute(uri: "/cart", method: .get, headers: [.cookie: cookie, .accept: "application/json"]) { response in
                #expect(response.status == .ok)
                let cart = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                #expect(cart?["items"] as? [String] == ["teapot", "kettle"])
                #expect(cart?["node"] as? String == "node-7")
            }
            let afterLogout = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: cookie]) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/login")
                return response.headers[values: .setCookie].joined(separator: "\n")
            }
            #expect(afterLogout.contains("Max-Age=0"))
            try await client.execute(uri: "/profile", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .seeOther, "the destroyed session must not log anyone in")
            }
        }
    }

    @Test func secureCookiesMarkEveryCookieTheAppSetsSecure() async throws {
        for secure in [false, true] {
            try await app(secureCookies: secure).test(.router) { client in
                let login = try await client.execute(
                    uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "user=alice&password=concord")
                ) { $0.headers[values: .setCookie] }
                let logout = try await client.execute(
                    uri: "/logout", method: .post, headers: [.cookie: login.compactMap { $0.split(separator: ";").first }.joined(separator: "; ")]
                ) { $0.headers[values: .setCookie] }
                #expect(login.contains { $0.hasPrefix("concord_session=") } && login.contains { $0.hasPrefix("concord_user=alice") })
                #expect(logout.contains { $0.hasPrefix("concord_user=;") && $0.contains("Max-Age=0") })
                for cookie in login + logout {
                    let attributes = cookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
                    #expect(attributes.contains("Secure") == secure, "\(cookie)")
                }
            }
        }
    }

    @Test func badFormsAreRejectedNotCrashed() async throws {
        try await app().test(.router) { client in
            let cookie = try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "user=bob&password=concord")
            ) { cookies(from: $0) }
            try await client.execute(
                uri: "/cart/add", method: .post, headers: [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "nothing=here")
            ) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: String(repeating: "x", count: 20_000))
            ) { response in
                #expect(response.status == .contentTooLarge)
            }
            try await client.execute(uri: "/profile", method: .get, headers: [.cookie: "concord_session=forged-id"]) { response in
                #expect(response.status == .seeOther)
            }
            // Bytes that are not UTF-8 (they logged in as "��"), and a body that is not a form.
            try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(bytes: Array("user=".utf8) + [0xFF, 0xFE] + Array("&password=concord".utf8))
            ) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "user=bob&password=concord")
            ) { response in
                #expect(response.status == .unsupportedMediaType)
            }
            try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "Application/X-WWW-Form-Urlencoded; charset=UTF-8"],
                body: ByteBuffer(string: "user=bob&password=concord")
            ) { response in
                #expect(response.status == .seeOther)
            }
        }
    }

    @Test func operationalEndpoints() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }
            // HEAD checks (HAProxy's `option httpchk HEAD /health`) get the same status, without a body.
            try await client.execute(uri: "/health", method: .head) { #expect($0.status == .ok && $0.body.readableBytes == 0) }
            try await client.execute(uri: "/ready", method: .head) { #expect($0.status == .ok && $0.body.readableBytes == 0) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("concord_test_total 1"))
                #expect(response.headers[Self.node] == "node-7")
            }
        }
    }

    /// `store+near-cache` puts what the cache saved on /metrics (an operator could not see it before 2026-12-03).
    @Test func theNearCacheIsOnMetrics() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-nc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = ConcordAppConfiguration(nodeID: "n1", strategy: .storeNearCache, storeURL: "sqlite:\(directory)/s.sqlite")
        let backend = try AppSessionBackend.make(configuration: configuration, logger: .init(label: "test"))
        let router = try ConcordAppServer.makeRouter(configuration: configuration, sessions: backend.sessions, metricsText: backend.metricsText)
        try await Application(router: router).test(.router) { client in
            let login = try await client.execute(uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "user=ann&password=concord"))
            let jar = cookies(from: login)
            for _ in 0..<3 {
                try await client.execute(uri: "/cart", method: .get, headers: [.cookie: jar]) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                let hits = text.split(separator: "\n").first { $0.hasPrefix("concord_app_near_cache_loads_total{outcome=\"hit\"}") }
                #expect(hits.flatMap { Int($0.split(separator: " ").last!) }.map { $0 >= 2 } == true, "\(text)")
                #expect(text.contains("concord_app_near_cache_store_round_trips_total "), "\(text)")
            }
        }
    }

    /// `--compress-cookies`: a cart that overflows the sealed cookie (500) fits once compressed.
    @Test func compressedClientCookiesHoldALargerCart() async throws {
        let key = SessionKeyRing.Key.generate(id: 1).base64
        func itemsAdded(compress: Bool) async throws -> Int {
            try await app(.client, key: key, compressCookies: compress).test(.router) { client in
                var jar = try await client.execute(uri: "/login", method: .post, headers: Self.form,
                                                   body: ByteBuffer(string: "user=ivy&password=concord")) { cookies(from: $0) }
                for index in 0..<30 {
                    var headers = Self.form
                    headers[.cookie] = jar
                    let item = "item-\(index)-" + String(repeating: "blue shoes ", count: 16)
                    let (status, next) = try await client.execute(uri: "/cart/add", method: .post, headers: headers,
                                                                  body: ByteBuffer(string: "item=\(item)")) { ($0.status, cookies(from: $0)) }
                    guard status == .seeOther else { return index }
                    jar = next.isEmpty ? jar : next
                }
                return 30
            }
        }
        let plain = try await itemsAdded(compress: false)
        let compressed = try await itemsAdded(compress: true)
        #expect(plain < 30, "the uncompressed cookie overflows within 30 items")
        #expect(compressed == 30, "compressed: \(compressed) items, uncompressed \(plain)")
    }

    /// Runtime peer changes happen on the app's own port, which a proxy forwards: only with the node's admin token
    /// (anyone could add a listener as a peer and receive every session), never this node itself.
    @Test func peerChangesNeedTheAdminToken() async throws {
        let changes = Mutex<[String]>([])
        func app(token: String?) throws -> some ApplicationProtocol {
            let configuration = ConcordAppConfiguration(nodeID: "n1", strategy: .sync, adminToken: token)
            let router = try ConcordAppServer.makeRouter(
                configuration: configuration, sessions: ConcordSessionConfiguration(strategy: .local()),
                changePeers: { add, peer in changes.withLock { $0.append("\(add ? "+" : "-")\(peer.id)") } })
            return Application(router: router)
        }
        let body = ByteBuffer(string: "peer=n9@127.0.0.1:9999")
        let token = "0123456789abcdef-token"
        try await app(token: nil).test(.router) { client in
            try await client.execute(uri: "/admin/peers/add", method: .post, headers: Self.form, body: body) { #expect($0.status == .forbidden) }
        }
        try await app(token: token).test(.router) { client in
            try await client.execute(uri: "/admin/peers/add", method: .post, headers: Self.form, body: body) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
            }
            var wrong = Self.form
            wrong[.authorization] = "Bearer \(token)x"
            try await client.execute(uri: "/admin/peers/add", method: .post, headers: wrong, body: body) { #expect($0.status == .unauthorized) }
            var right = Self.form
            right[.authorization] = "Bearer \(token)"
            try await client.execute(uri: "/admin/peers/add", method: .post, headers: right, body: body) { #expect($0.status == .ok) }
            try await client.execute(uri: "/admin/peers/add", method: .post, headers: right, body: ByteBuffer(string: "peer=n1@127.0.0.1:9998")) {
                #expect($0.status == .badRequest, "this node itself")
            }
            try await client.execute(uri: "/admin/peers/remove", method: .post, headers: right, body: body) { #expect($0.status == .ok) }
        }
        #expect(changes.withLock { $0 } == ["+n9", "-n9"])
    }

    @Test func clientSessionsOpenOnAnotherNodeWithTheSameKey() async throws {
        let key = SessionKeyRing.Key.generate(id: 1).base64
        let cookie = try await app(.client, key: key, node: "node-1").test(.router) { client in
            try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "user=carol&password=concord")
            ) { cookies(from: $0) }
        }
        try await app(.client, key: key, node: "node-2").test(.router) { client in
            try await client.execute(uri: "/profile", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[Self.node] == "node-2")
                #expect(String(buffer: response.body).contains("carol"))
            }
        }
        try await app(.client, key: SessionKeyRing.Key.generate(id: 1).base64).test(.router) { client in
            try await client.execute(uri: "/profile", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .seeOther, "a node with another key must not open the cookie")
            }
        }
    }

    @Test func peersAreParsedStrictly() throws {
        let peer = try AppSessionBackend.parsePeer("127.0.0.1:8081@127.0.0.1:9081")
        #expect(peer.id == "127.0.0.1:8081" && peer.host == "127.0.0.1" && peer.port == 9081)
        for bad in ["", "node-1", "node-1@host", "@host:1", "node@host:0", "node@host:x"] {
            #expect(throws: AppError.self) { try AppSessionBackend.parsePeer(bad) }
        }
        // A list: no id twice, and not this node's own.
        #expect(try AppSessionBackend.parsePeers(["n2@h:1", "n3@h:2"], ownID: "n1").map(\.id) == ["n2", "n3"])
        #expect(throws: AppError.self) { try AppSessionBackend.parsePeers(["n2@h:1", "n2@h:2"], ownID: "n1") }
        #expect(throws: AppError.self) { try AppSessionBackend.parsePeers(["n1@h:1"], ownID: "n1") }
    }
}
