/// The demo app's HTML: plain forms, usable in any browser, every page naming the node that served it.
enum AppPages {
    static func login(node: String, strategy: String, error: String? = nil) -> String {
        page(title: "Log in", node: node, strategy: strategy, body: """
            \(error.map { "<p class=\"error\">\(escape($0))</p>" } ?? "")
            <form method="post" action="/login">
              <label>User <input name="user" autofocus required></label>
              <label>Password <input name="password" type="password" required></label>
              <button>Log in</button>
            </form>
            <p class="hint">Any user name; the password is <code>concord</code>.</p>
            """)
    }

    static func profile(node: String, strategy: String, user: String, cartCount: Int) -> String {
        page(title: "Profile", node: node, strategy: strategy, body: """
            <p>Logged in as <strong id="user">\(escape(user))</strong>.</p>
            <p><a href="/cart">Cart</a>: <span id="cart-count">\(cartCount)</span> item(s).</p>
            \(cartForm)
            <form method="post" action="/logout"><button>Log out</button></form>
            """)
    }

    static func cart(node: String, strategy: String, user: String, items: [String]) -> String {
        let list = items.isEmpty
            ? "<p>The cart is empty.</p>"
            : "<ul id=\"cart\">" + items.map { item in
                "<li>\(escape(item)) <form method=\"post\" action=\"/cart/remove\" style=\"display:inline\">"
                    + "<input type=\"hidden\" name=\"item\" value=\"\(escape(item))\"><button>remove</button></form></li>"
            }.joined() + "</ul>"
        return page(title: "Cart", node: node, strategy: strategy, body: """
            <p>Cart of <strong id="user">\(escape(user))</strong>:</p>
            \(list)
            \(cartForm)
            <p><a href="/profile">Profile</a></p>
            """)
    }

    private static let cartForm = """
        <form method="post" action="/cart/add">
          <label>Item <input name="item" required></label> <button>Add to cart</button>
        </form>
        """

    private static func page(title: String, node: String, strategy: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>\(title) · Concord</title>
        <style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto}
        .node{background:#eef;padding:.3em .6em;border-radius:4px}.error{color:#b00}label{margin-right:1em}</style></head>
        <body><h1>\(title)</h1>
        <p class="node">Served by <strong id="node">\(escape(node))</strong> · strategy <code>\(escape(strategy))</code></p>
        \(body)
        </body></html>
        """
    }

    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
