import ConcordHummingbird
import ConcordSessions
import ConcordSessionsTesting
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics

struct ShopSession: SessionValue, Equatable {
    var userName: String?
    var cart: [String] = []
    var note = ""
}

/// A small shop app with login, cart, notes and logout, on the session middleware.
enum SessionTestApp {
    static func router(
        manager: SessionManager<ShopSession>, metrics: any MetricsFactory = MetricsSystem.factory
    ) -> Router<ConcordRequestContext<ShopSession>> {
        let router = Router(context: ConcordRequestContext<ShopSession>.self)
        router.add(middleware: ConcordSessionMiddleware(manager: manager, metricsFactory: metrics))
        router.post("/login/:user") { _, context in
            let user = try context.parameters.require("user")
            context.session.logIn(userID: user)
            context.session.update { $0.userName = user }
            return "welcome \(user)"
        }
        router.get("/me") { _, context in
            context.session.value.userName ?? "anonymous"
        }
        router.get("/id") { _, context in
            context.session.id ?? "none"
        }
        router.post("/cart/:item") { _, context in
            let item = try context.parameters.require("item")
            await Task.yield()  // stands in for handler work, so parallel requests overlap
            context.session.update { $0.cart.append(item) }
            return "added"
        }
        router.get("/cart") { _, context in
            context.session.value.cart.joined(separator: ",")
        }
        router.post("/note/:size") { _, context in
            let size = try context.parameters.require("size", as: Int.self)
            context.session.update { $0.note = String(repeating: "n", count: size) }
            return "noted"
        }
        router.post("/logout") { _, context in
            context.session.destroy()
            return "bye"
        }
        return router
    }

    static func application(
        manager: SessionManager<ShopSession>, metrics: any MetricsFactory = MetricsSystem.factory,
        logger: Logger = Logger(label: "test")
    ) -> some ApplicationProtocol {
        Application(
            router: router(manager: manager, metrics: metrics), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: logger)
    }
}

/// A cookie jar of one session cookie: what a browser would send back.
struct SessionCookieJar {
    var name: String
    var value: String?

    init(name: String = "concord_session") { self.name = name }

    /// Applies the response's `Set-Cookie` for our cookie; returns the header seen (if any).
    @discardableResult
    mutating func receive(_ response: TestResponse) -> String? {
        guard let header = response.headers[values: .setCookie].first(where: { $0.hasPrefix(name + "=") }) else { return nil }
        let pair = header.split(separator: ";", maxSplits: 1)[0]
        let value = String(pair.dropFirst(name.count + 1))
        self.value = header.contains("Max-Age=0") || value.isEmpty ? nil : value
        return header
    }

    var headers: HTTPFields {
        guard let value else { return [:] }
        return [.cookie: "other=1; \(name)=\(value)"]
    }
}
