import ConcordHummingbird
import ConcordReplication
import ConcordSessions
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The demo web app `concord app` runs: login, profile, cart, logout, plus `/health`, `/ready` and `/metrics`.
/// The same code runs with every session strategy; only ``AppSessionBackend`` differs.
///
/// Routes (the lab and the browser test drive them; keep them): `GET /login` (form), `POST /login` (fields
/// `user`, `password`; success → 303 to /profile), `GET /profile` (200 with the user name, else 303 to /login),
/// `POST /cart/add` and `POST /cart/remove` (field `item`; 303 to /cart), `GET /cart` (HTML, or JSON
/// `{"user","node","items"}` with `Accept: application/json`), `POST /logout` (303 to /login). Every response
/// carries `X-Concord-Node`.
public enum ConcordAppServer {
    public typealias Context = ConcordRequestContext<ShopSession>

    /// The cookie naming the logged-in user, for proxies that hash on the user (`--key cookie:concord_user`).
    public static let userCookieName = "concord_user"

    /// Largest form body accepted (login, cart); more is answered with 413.
    static let maximumFormBytes = 16 * 1024

    /// The app's router.
    /// - Parameters:
    ///   - isReady: whether `/ready` answers 200 (a replicating node is ready once it has its peers' state).
    ///   - isStopping: whether a 503 from `/ready` says `stopping` (a delayed shutdown) rather than `starting`.
    ///   - metricsText: the Prometheus text `/metrics` serves.
    public static func makeRouter(
        configuration: ConcordAppConfiguration,
        sessions: ConcordSessionConfiguration,
        isReady: @escaping @Sendable () -> Bool = { true },
        isStopping: @escaping @Sendable () -> Bool = { false },
        metricsText: @escaping @Sendable () -> String = { "" },
        changePeers: (@Sendable (_ add: Bool, _ peer: ReplicationPeer) -> Void)? = nil
    ) throws -> Router<Context> {
        let router = Router(context: Context.self)
        let node = configuration.nodeID
        let strategy = configuration.strategy.rawValue
        router.add(middleware: NodeHeaderMiddleware(nodeID: node))

        // HEAD too: health checks often use it (HAProxy `option httpchk HEAD /health`); Hummingbird answers HEAD
        // only where a route says so (it was 404, so such a check marked every node down).
        router.get("/health") { _, _ in "ok\n" }
        router.head("/health") { _, _ in HTTPResponse.Status.ok }
        router.get("/ready") { _, _ -> Response in
            isReady() ? Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
                : Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: isStopping() ? "stopping\n" : "starting\n")))
        }
        router.head("/ready") { _, _ in isReady() ? HTTPResponse.Status.ok : .serviceUnavailable }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: metricsText())))
        }

        if let changePeers {
            // Runtime membership for sync and ring (the lab's scale-out and scale-in). On the app's own port — the
            // one a proxy forwards — so only with the admin token: a peer added here receives every session.
            let token = configuration.adminToken
            for (path, add) in [("/admin/peers/add", true), ("/admin/peers/remove", false)] {
                router.post(RouterPath(path)) { request, context -> Response in
                    try AdminToken.check(request.headers[.authorization], against: token)
                    let form = try await FormFields(request: request, context: context)
                    let peer: ReplicationPeer
                    do {
                        peer = try AppSessionBackend.parsePeer(form["peer"] ?? "")
                    } catch {
                        throw HTTPError(.badRequest, message: "\(error)")
                    }
                    guard peer.id != node else { throw HTTPError(.badRequest, message: "\(peer.id) is this node") }
                    changePeers(add, peer)
                    context.logger.info("replication peer \(add ? "added" : "removed")", metadata: ["peer": "\(peer)"])
                    return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
                }
            }
        }

        var sessions = sessions
        if configuration.secureCookies { sessions.cookie.secure = true }
        // `Secure` on the user cookie too when the session cookie has it (behind a TLS proxy).
        let userCookieAttributes = "; Path=/; SameSite=Lax" + (sessions.cookie.secure ? "; Secure" : "")
        let pages = router.group().add(middleware: try ConcordSessionMiddleware<Context>(configuration: sessions))
        pages.get("/") { _, _ in Response.redirect(to: "/profile") }
        pages.get("/login") { _, context -> Response in
            html(AppPages.login(node: node, strategy: strategy), loggedInAs: context.session.value.userName)
        }
        pages.post("/login") { request, context -> Response in
            let form = try await FormFields(request: request, context: context)
            guard let user = form["user"], (1...64).contains(user.count), form["password"] == configuration.password else {
                return html(AppPages.login(node: node, strategy: strategy, error: "Wrong user or password."), status: .unauthorized)
            }
            context.session.logIn(userID: user)
            context.session.update { $0.userName = user }
            var response = Response.redirect(to: "/profile")
            response.headers[values: .setCookie].append("\(userCookieName)=\(Self.cookieSafe(user))\(userCookieAttributes)")
            return response
        }
        pages.get("/profile") { _, context -> Response in
            let session = context.session.value
            guard let user = session.userName else { return Response.redirect(to: "/login") }
            return html(AppPages.profile(node: node, strategy: strategy, user: user, cartCount: session.cart.count))
        }
        pages.post("/cart/add") { request, context -> Response in
            guard context.session.value.userName != nil else { return Response.redirect(to: "/login") }
            let form = try await FormFields(request: request, context: context)
            guard let item = form["item"], (1...200).contains(item.count) else {
                throw HTTPError(.badRequest, message: "The form field `item` (1…200 characters) is required.")
            }
            // `update` composes with parallel requests of the same user: on a version conflict it runs again.
            context.session.update { $0.cart.append(item) }
            return Response.redirect(to: "/cart")
        }
        pages.post("/cart/remove") { request, context -> Response in
            guard context.session.value.userName != nil else { return Response.redirect(to: "/login") }
            let form = try await FormFields(request: request, context: context)
            guard let item = form["item"] else { throw HTTPError(.badRequest, message: "The form field `item` is required.") }
            context.session.update { cart in
                if let index = cart.cart.firstIndex(of: item) { cart.cart.remove(at: index) }
            }
            return Response.redirect(to: "/cart")
        }
        pages.get("/cart") { request, context -> Response in
            let session = context.session.value
            guard let user = session.userName else { return Response.redirect(to: "/login") }
            if request.headers[.accept]?.contains("application/json") == true {
                let view = CartView(user: user, node: node, items: session.cart)
                let data = try JSONEncoder().encode(view)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            }
            return html(AppPages.cart(node: node, strategy: strategy, user: user, items: session.cart))
        }
        pages.post("/logout") { _, context -> Response in
            context.session.destroy()
            var response = Response.redirect(to: "/login")
            response.headers[values: .setCookie].append("\(userCookieName)=; Max-Age=0\(userCookieAttributes)")
            return response
        }
        return router
    }

    struct CartView: Codable {
        var user: String
        var node: String
        var items: [String]
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok, loggedInAs _: String? = nil) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A cookie value carries only RFC 6265 cookie-octets; anything else is percent-encoded.
    static func cookieSafe(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "user"
    }
}
