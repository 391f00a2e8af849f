import NIOCore
import NIOHTTP1

/// How a backend's response head goes to the client, the same on both HTTP engines (``HTTPProxyHandler``,
/// ``HTTPForwardingLoop``).
enum ClientResponseHead {
    /// Whether nothing in the backend's head must change for the client — the usual keep-alive HTTP/1.1 exchange.
    static func goesUnchanged(_ head: BackendResponseHead, machine: HTTPExchangeStateMachine, pick: Balancer.Pick?,
                              requestVersion: HTTPVersion, runtime: ProxyRuntime) -> Bool {
        machine.keepAlive && machine.requestComplete && !(pick?.setsStickyCookie ?? false) && head.suitsKeptConnection
            && requestVersion == .http1_1 && runtime.responseFields.isEmpty
    }

    /// The backend's head as the client gets it: its bytes unchanged when nothing in it must change, otherwise
    /// rewritten without hop-by-hop fields, with the sticky cookie and the configured `responseHeaders`, with
    /// `Connection` as this client connection will behave, and with the client's HTTP version.
    static func bytes(_ head: BackendResponseHead, machine: HTTPExchangeStateMachine, pick: Balancer.Pick?,
                      requestVersion: HTTPVersion, runtime: ProxyRuntime, allocator: ByteBufferAllocator) -> ByteBuffer {
        if goesUnchanged(head, machine: machine, pick: pick, requestVersion: requestVersion, runtime: runtime) { return head.bytes }
        let closing = !machine.keepAlive || !machine.requestComplete
        var extra = runtime.responseFields
        if let pick, pick.setsStickyCookie {
            extra.append((name: "set-cookie", value: stickySetCookie(for: pick.backend, runtime: runtime)))
        }
        if closing {
            extra.append((name: "connection", value: "close"))
        } else if requestVersion == .http1_0 {
            extra.append((name: "connection", value: "keep-alive"))
        }
        return head.rewritten(version: requestVersion, adding: extra, allocator: allocator)
    }

    /// The sticky cookie naming `backend` (`Secure` on a TLS connection).
    static func stickySetCookie(for backend: Backend, runtime: ProxyRuntime) -> String {
        StickyCookie.setCookie(name: runtime.configuration.stickyCookie, backend: backend, secure: runtime.tlsContext != nil)
    }
}
