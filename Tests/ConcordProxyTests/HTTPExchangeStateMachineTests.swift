import NIOHTTP1
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct HTTPExchangeStateMachineTests {
    func head(_ method: HTTPMethod = .GET, headers: [(String, String)] = [], version: HTTPVersion = .http1_1) -> ClientRequestHead {
        ClientRequestHead.parsing(method: method.rawValue, headers: headers, http10: version == .http1_0)
    }

    @Test func routesThenHoldsPartsUntilConnected() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        #expect(machine.receivedHead(head()) == .route)
        #expect(machine.state == .connecting)
        #expect(!machine.wantsClientReads(hasQueuedParts: false))
        #expect(machine.receivedBody(bytes: 10) == .hold)
        #expect(machine.receivedEnd() == .hold)
        // Complete: reading on only shows a pipelined request (queued) or the client going away.
        #expect(machine.wantsClientReads(hasQueuedParts: false))
        #expect(!machine.wantsClientReads(hasQueuedParts: true))
        machine.connected()
        #expect(machine.state == .proxying)
        // The request is complete: the next parts belong to a pipelined request.
        #expect(machine.receivedEnd() == .queue)
        machine.responseHeadReceived()
        #expect(machine.responseEnded(backendKeepAlive: true) == .keepAlive(reuseBackend: true))
        #expect(machine.state == .idle)
    }

    @Test func onceTheProxyStopsNoExchangeKeepsItsConnectionUnlessItsResponseHadBegun() {
        // A complete GET sent to its backend.
        func connectedGET() -> HTTPExchangeStateMachine {
            var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
            #expect(machine.receivedHead(head()) == .route && machine.receivedEnd() == .hold)
            machine.connected()
            return machine
        }
        // Stop before the response: this exchange closes after it.
        var waiting = connectedGET()
        waiting.proxyStopping()
        waiting.responseHeadReceived()
        #expect(waiting.responseEnded(backendKeepAlive: true) == .close(reuseBackend: true))
        // Stop after the response head went out as keep-alive: that promise is kept for this exchange...
        var started = connectedGET()
        started.responseHeadReceived()
        started.proxyStopping()
        #expect(started.responseEnded(backendKeepAlive: true) == .keepAlive(reuseBackend: true))
        // ...and the next request on the connection closes after its response.
        _ = started.receivedHead(head())
        #expect(!started.keepAlive)
    }

    @Test func anUpgradeRequestStopsClientReadsUntilItsResponseAndNeverKeepsTheConnection() {
        let upgrade = head(headers: [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        #expect(machine.receivedHead(upgrade) == .route)
        #expect(machine.upgradeRequested && !machine.keepAlive)
        #expect(machine.receivedEnd() == .hold)
        // Complete: what the client sends next is not HTTP if the backend switches, so it is not read yet.
        #expect(!machine.wantsClientReads(hasQueuedParts: false))
        machine.connected()
        #expect(!machine.wantsClientReads(hasQueuedParts: false))
        machine.responseHeadReceived()
        let switched = machine.switchedProtocols()
        #expect(switched)
        #expect(machine.state == .closing)
        // Refused (any other response): the client connection closes after it, and the backend's too (the backend
        // may have stopped reading HTTP on it).
        var refused = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = refused.receivedHead(upgrade)
        _ = refused.receivedEnd()
        refused.connected()
        refused.responseHeadReceived()
        #expect(refused.responseEnded(backendKeepAlive: true) == .close(reuseBackend: false))
        // A 101 with no upgrade request in flight does not fit.
        var plain = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = plain.receivedHead(head())
        _ = plain.receivedEnd()
        plain.connected()
        let fits = plain.switchedProtocols()
        #expect(!fits)
    }

    @Test func forwardsWhileProxyingAndPausesReadsOnlyForAQueuedRequest() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.POST, headers: [("content-length", "5")]))
        machine.connected()
        #expect(machine.wantsClientReads(hasQueuedParts: false))
        #expect(machine.receivedBody(bytes: 5) == .forward)
        #expect(machine.receivedEnd() == .forward)
        // After the end, reads stay on until a part of the next request is queued, then pause.
        #expect(machine.wantsClientReads(hasQueuedParts: false))
        #expect(!machine.wantsClientReads(hasQueuedParts: true))
        machine.close()
        #expect(!machine.wantsClientReads(hasQueuedParts: false))
    }

    @Test func rejectsCONNECTWith405() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        #expect(machine.receivedHead(head(.CONNECT)) == .reject(.methodNotAllowed))
        #expect(machine.state == .closing)
    }

    @Test func rejectsDeclaredBodyOverTheLimitWith413() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits(maxBodyBytes: 10))
        #expect(machine.receivedHead(head(.POST, headers: [("content-length", "11")])) == .reject(.payloadTooLarge))
    }

    @Test func rejectsStreamedBodyOverTheLimit() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits(maxBodyBytes: 10))
        _ = machine.receivedHead(head(.POST, headers: [("transfer-encoding", "chunked")]))
        machine.connected()
        #expect(machine.receivedBody(bytes: 6) == .forward)
        #expect(machine.receivedBody(bytes: 6) == .reject(.payloadTooLarge))
        #expect(machine.receivedEnd() == .drop)
    }

    @Test func streamedBodyOverTheLimitAfterTheResponseBeganCloses() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits(maxBodyBytes: 10))
        _ = machine.receivedHead(head(.POST, headers: [("transfer-encoding", "chunked")]))
        machine.connected()
        machine.responseHeadReceived()
        #expect(machine.receivedBody(bytes: 11) == .close)
    }

    @Test func retriesAnIdempotentRequestOnceOnConnectFailure() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        #expect(machine.connectFailed(timedOut: false, hasAlternative: true) == .retry)
        #expect(machine.connectFailed(timedOut: false, hasAlternative: true) == .respond(.badGateway))
    }

    @Test func aPostWhoseConnectFailedIsRetriedOnceButNeverOnceSent() {
        // Nothing reached the backend: the POST goes to the next node, once.
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.POST, headers: [("content-length", "0")]))
        #expect(machine.connectFailed(timedOut: true, hasAlternative: true) == .retry)
        #expect(machine.connectFailed(timedOut: true, hasAlternative: true) == .respond(.gatewayTimeout))
        // Sent, then the connection failed: it may have been processed, so no retry.
        var sent = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = sent.receivedHead(head(.POST, headers: [("content-length", "0")]))
        #expect(sent.connectFailed(timedOut: false, hasAlternative: true) == .retry)
        sent.connected()
        #expect(sent.backendFailed(reusedConnection: false, hasAlternative: true) == .respond(.badGateway))
    }

    @Test func noAlternativeMeans502() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        #expect(machine.connectFailed(timedOut: false, hasAlternative: false) == .respond(.badGateway))
    }

    @Test func backendFailureBeforeTheResponseRetriesAnIdempotentRequestOnce() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        #expect(machine.receivedEnd() == .hold)
        machine.connected()
        // A connection opened for the request reset before any response byte: the next candidate gets it.
        #expect(machine.backendFailed(reusedConnection: false, hasAlternative: true) == .retry)
        #expect(machine.state == .connecting)
        #expect(machine.attempts == 2)
        machine.connected()
        // The retry failed as well: one retry per request, then 502.
        #expect(machine.backendFailed(reusedConnection: false, hasAlternative: true) == .respond(.badGateway))
        #expect(machine.state == .closing)
    }

    @Test func backendFailureAfterAFailedConnectIs502() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        #expect(machine.connectFailed(timedOut: false, hasAlternative: true) == .retry)
        machine.connected()
        // The connect retry used the request's only retry.
        #expect(machine.backendFailed(reusedConnection: false, hasAlternative: true) == .respond(.badGateway))
    }

    @Test func backendFailureIsNotRetriedWithoutAnAlternativeOrForAPost() {
        var alone = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = alone.receivedHead(head(.GET))
        alone.connected()
        #expect(alone.backendFailed(reusedConnection: false, hasAlternative: false) == .respond(.badGateway))

        var post = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = post.receivedHead(head(.POST, headers: [("content-length", "0")]))
        post.connected()
        #expect(post.backendFailed(reusedConnection: true, hasAlternative: true) == .respond(.badGateway))
    }

    @Test func aStalePooledConnectionIsReplacedOnceAndTheNextNodeRetryStillFollows() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        #expect(machine.receivedEnd() == .hold)
        machine.connected()
        // A pooled connection fails before any byte: the same backend, on a fresh connection, even alone.
        #expect(machine.backendFailed(reusedConnection: true, hasAlternative: false) == .reconnect)
        #expect(machine.state == .connecting)
        #expect(machine.attempts == 1, "the reconnect does not use the request's retry")
        // The backend is really gone: its connect fails, and the next node gets the request.
        #expect(machine.connectFailed(timedOut: false, hasAlternative: true) == .retry)
        machine.connected()
        // Only once per request: another stale pooled connection is an ordinary failure now.
        #expect(machine.backendFailed(reusedConnection: true, hasAlternative: true) == .respond(.badGateway))

        var next = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = next.receivedHead(head(.GET))
        #expect(next.reconnected == false, "every request starts with its own reconnect")
    }

    @Test func backendFailureAfterTheResponseBeganCloses() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        machine.connected()
        machine.responseHeadReceived()
        #expect(machine.backendFailed(reusedConnection: false, hasAlternative: true) == .close)
        #expect(machine.state == .closing)
    }

    @Test func retriedRequestHoldsPartsAgainUntilReconnected() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.PUT, headers: [("content-length", "4")]))
        machine.connected()
        #expect(machine.receivedBody(bytes: 2) == .forward)
        #expect(machine.backendFailed(reusedConnection: false, hasAlternative: true) == .retry)
        // While the next candidate is being connected, the rest of the body waits with the parts already sent.
        #expect(machine.receivedBody(bytes: 2) == .hold)
        #expect(machine.receivedEnd() == .hold)
        machine.connected()
        machine.responseHeadReceived()
        #expect(machine.responseEnded(backendKeepAlive: true) == .keepAlive(reuseBackend: true))
    }

    @Test func closesWhenTheClientAsksOrTheRequestIsUnfinished() {
        var http10 = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = http10.receivedHead(head(version: .http1_0))
        http10.connected()
        _ = http10.receivedEnd()
        #expect(http10.responseEnded(backendKeepAlive: true) == .close(reuseBackend: true))

        var early = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = early.receivedHead(head(.POST, headers: [("content-length", "100")]))
        early.connected()
        // The backend answered before the body was sent: neither side can carry another request.
        #expect(early.responseEnded(backendKeepAlive: true) == .close(reuseBackend: false))
    }

    @Test func aBodyEndedByTheBackendsCloseClosesTheClientToo() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head())
        machine.connected()
        _ = machine.receivedEnd()
        #expect(machine.keepAlive)
        machine.responseHeadReceived(closeDelimited: true)
        #expect(!machine.keepAlive)
        #expect(machine.responseEnded(backendKeepAlive: false) == .close(reuseBackend: false))
    }

    @Test func aMalformedResponseIs502WithoutRetryOrClosesOnceBegun() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head(.GET))
        machine.connected()
        #expect(machine.backendResponseMalformed() == .respond(.badGateway))
        #expect(machine.state == .closing)

        var begun = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = begun.receivedHead(head(.GET))
        begun.connected()
        begun.responseHeadReceived()
        #expect(begun.backendResponseMalformed() == .close)
    }

    @Test func responseTimeoutIs504BeforeTheHead() {
        var machine = HTTPExchangeStateMachine(limits: ProxyLimits())
        _ = machine.receivedHead(head())
        machine.connected()
        #expect(machine.responseTimedOut() == .respond(.gatewayTimeout))
    }
}
