import NIOCore
import Testing

@testable import ConcordRedis

@Suite(.timeLimit(.minutes(3))) struct RedisPipelineStateMachineTests {
    @Test func repliesGoToWaitersInOrder() {
        var machine = RedisPipelineStateMachine<Int>()
        for waiter in 1...3 {
            guard case .write = machine.send(waiter) else { Issue.record("send refused"); return }
        }
        #expect(machine.pendingCount == 3)
        for expected in 1...3 {
            guard case .succeed(let waiter) = machine.receive(.integer(0)) else { Issue.record("no waiter"); return }
            #expect(waiter == expected)
        }
        #expect(machine.pendingCount == 0)
    }

    @Test func pushesAreNotReplies() {
        var machine = RedisPipelineStateMachine<Int>()
        _ = machine.send(1)
        guard case .ignore = machine.receive(.push([.simpleString("invalidate")])) else { Issue.record("push matched"); return }
        #expect(machine.pendingCount == 1)
    }

    @Test func unexpectedReplyClosesTheConnection() {
        var machine = RedisPipelineStateMachine<Int>()
        guard case .closeConnection = machine.receive(.simpleString("OK")) else { Issue.record("reply accepted"); return }
    }

    @Test func closeFailsPendingAndLaterSends() {
        var machine = RedisPipelineStateMachine<Int>()
        _ = machine.send(1)
        _ = machine.send(2)
        #expect(Array(machine.close(.connectionClosed)) == [1, 2])
        #expect(machine.close(.connectionClosed).isEmpty)
        guard case .fail(let error) = machine.send(3) else { Issue.record("send after close"); return }
        #expect(error == .connectionClosed)
        #expect(!machine.isOpen)
    }
}
