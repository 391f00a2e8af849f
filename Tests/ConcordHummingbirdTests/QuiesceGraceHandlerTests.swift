import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import ConcordHummingbird

/// ``QuiesceGraceHandler`` in front of Hummingbird's own `HTTPConnectionStateHandler` (the order Hummingbird's
/// HTTP/1 pipeline gives `additionalChannelHandlers`), on an embedded channel with a manual clock.
@Suite struct QuiesceGraceHandlerTests {
    private static let grace = TimeAmount.milliseconds(500)

    private func connectedChannel(withGrace: Bool = true) async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        if withGrace { try channel.pipeline.syncOperations.addHandler(QuiesceGraceHandler(grace: Self.grace)) }
        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(logger: Logger(label: "test")))
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).get()
        return channel
    }

    private func quiesce(_ channel: EmbeddedChannel) {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    private func sendRequest(_ channel: EmbeddedChannel) throws {
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: "x", path: "/cart/add")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
    }

    /// Writes a response and returns the head as the client gets it.
    private func respond(_ channel: EmbeddedChannel) throws -> HTTPResponse? {
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .seeOther)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        var head: HTTPResponse?
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            if case .head(let written) = part { head = written }
        }
        return head
    }

    /// What the handler is for: without it, an idle connection closes the moment the server quiesces.
    @Test func withoutTheHandlerAnIdleConnectionClosesAtOnce() async throws {
        let channel = try await connectedChannel(withGrace: false)
        quiesce(channel)
        #expect(!channel.isActive)
    }

    @Test func anIdleConnectionStaysOpenForTheGraceThenCloses() async throws {
        let channel = try await connectedChannel()
        quiesce(channel)
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: Self.grace - .milliseconds(1))
        #expect(channel.isActive, "closed before the grace was over")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive, "still open after the grace")
    }

    @Test func aRequestArrivingInTheGraceIsAnsweredThenTheConnectionCloses() async throws {
        let channel = try await connectedChannel()
        try sendRequest(channel)
        let first = try respond(channel)
        #expect(first?.headerFields[.connection] == nil, "Connection: close before any shutdown")
        _ = try channel.readInbound(as: HTTPRequestPart.self)
        _ = try channel.readInbound(as: HTTPRequestPart.self)

        quiesce(channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(300))
        try sendRequest(channel)
        guard case .head(let request) = try channel.readInbound(as: HTTPRequestPart.self) else {
            Issue.record("the request did not reach the app")
            return
        }
        #expect(request.path == "/cart/add")
        #expect(channel.isActive, "closed while the request was being handled")
        let head = try respond(channel)
        #expect(head?.status == .seeOther)
        #expect(head?.headerFields[.connection] == "close")
        #expect(!channel.isActive, "not closed after the response")
        channel.embeddedEventLoop.advanceTime(by: Self.grace)  // the cancelled grace timer does nothing
    }

    @Test func aRequestInProgressAtQuiesceIsAnsweredWithConnectionClose() async throws {
        let channel = try await connectedChannel()
        try sendRequest(channel)
        quiesce(channel)
        #expect(channel.isActive)
        let head = try respond(channel)
        #expect(head?.headerFields[.connection] == "close")
        #expect(!channel.isActive)
    }

    @Test func anInterimResponseDoesNotSayConnectionClose() async throws {
        let channel = try await connectedChannel()
        try sendRequest(channel)
        quiesce(channel)
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .continue)))
        guard case .head(let interim) = try channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("no interim head written")
            return
        }
        #expect(interim.headerFields[.connection] == nil)
        #expect(try respond(channel)?.headerFields[.connection] == "close")
    }

    @Test func stateMachine() {
        var idle = QuiesceGraceStateMachine()
        #expect(!idle.responseHeadMustCloseConnection())
        #expect(idle.quiesceRequested(channelIsActive: true) == .startGraceTimer)
        #expect(idle.responseHeadMustCloseConnection())
        #expect(idle.quiesceRequested(channelIsActive: true) == .doNothing, "a second quiesce restarted the grace")
        #expect(idle.requestHeadRead() == .forwardQuiesceAfterHead)
        #expect(idle.graceExpired() == .doNothing, "the grace closed a connection whose request is in progress")
        #expect(idle.requestHeadRead() == .doNothing)

        var busy = QuiesceGraceStateMachine()
        #expect(busy.requestHeadRead() == .doNothing)
        #expect(busy.quiesceRequested(channelIsActive: true) == .forwardQuiesce)

        var answered = QuiesceGraceStateMachine()
        _ = answered.requestHeadRead()
        answered.responseEndWritten()
        #expect(answered.quiesceRequested(channelIsActive: true) == .startGraceTimer)
        #expect(answered.graceExpired() == .forwardQuiesce)
        #expect(answered.graceExpired() == .doNothing)

        // Accepted after the shutdown began: the server will never serve it, so it closes at once.
        var late = QuiesceGraceStateMachine()
        #expect(late.quiesceRequested(channelIsActive: false) == .forwardQuiesce)
    }
}
