import NIOConcurrencyHelpers
import NIOEmbedded
import Testing

@testable import ConcordProxy

/// The per-backend slots and queue of `limits.maxRequestsPerBackend`, without a proxy: callbacks run on an
/// embedded event loop when the test runs it.
@Suite struct BackendAdmissionTests {
    /// Tickets whose callbacks record `name:outcome` in the order they ran.
    final class Recorder: Sendable {
        let loop = EmbeddedEventLoop()
        private let log = NIOLockedValueBox<[String]>([])
        var events: [String] {
            loop.run()
            return log.withLockedValue { $0 }
        }

        func ticket(_ name: String) -> BackendAdmission.Ticket {
            BackendAdmission.Ticket(eventLoop: loop) { [log] _, outcome in
                log.withLockedValue { $0.append("\(name):\(outcome == .admitted ? "admitted" : "redispatched")") }
            }
        }
    }

    @Test func slotsUpToTheLimitThenFirstComeFirstServed() {
        let admission = BackendAdmission()
        let r = Recorder()
        #expect(admission.enter(limit: 2) { r.ticket("a") } == .admitted)
        #expect(admission.enter(limit: 2) { r.ticket("b") } == .admitted)
        #expect(admission.enter(limit: 2) { r.ticket("c") } == .queued)
        #expect(admission.enter(limit: 2) { r.ticket("d") } == .queued)
        #expect(admission.admitted == 2 && admission.queued == 2)
        #expect(r.events.isEmpty, "nobody waiting was admitted while every slot was held")
        admission.leave(limit: 2)
        #expect(r.events == ["c:admitted"], "the slot went to the first waiter")
        #expect(admission.admitted == 2 && admission.queued == 1)
        admission.leave(limit: 2)
        admission.leave(limit: 2)
        #expect(r.events == ["c:admitted", "d:admitted"])
        #expect(admission.admitted == 1 && admission.queued == 0)
        // With free slots and nobody waiting, a newcomer goes at once again.
        #expect(admission.enter(limit: 2) { r.ticket("e") } == .admitted)
    }

    @Test func aWithdrawnWaiterIsNeverAdmittedAndALateWithdrawalSaysSo() {
        let admission = BackendAdmission()
        let r = Recorder()
        #expect(admission.enter(limit: 1) { r.ticket("a") } == .admitted)
        let b = r.ticket("b"), c = r.ticket("c")
        #expect(admission.enter(limit: 1) { b } == .queued)
        #expect(admission.enter(limit: 1) { c } == .queued)
        #expect(admission.withdraw(b), "b was still queued")
        admission.leave(limit: 1)
        #expect(r.events == ["c:admitted"], "b left the queue: the slot skipped it")
        #expect(!admission.withdraw(c), "c was already admitted: its caller must give the slot back")
    }

    @Test func redispatchEmptiesTheQueueAndKeepsTheSlots() {
        let admission = BackendAdmission()
        let r = Recorder()
        #expect(admission.enter(limit: 1) { r.ticket("a") } == .admitted)
        #expect(admission.enter(limit: 1) { r.ticket("b") } == .queued)
        #expect(admission.enter(limit: 1) { r.ticket("c") } == .queued)
        #expect(admission.redispatchAll() == 2)
        #expect(r.events == ["b:redispatched", "c:redispatched"])
        #expect(admission.admitted == 1 && admission.queued == 0)
        admission.leave(limit: 1)
        #expect(admission.admitted == 0)
        #expect(r.events.count == 2, "nobody left to admit")
    }

    @Test func aRaisedOrRemovedLimitLetsMoreWaitersGo() {
        let admission = BackendAdmission()
        let r = Recorder()
        #expect(admission.enter(limit: 1) { r.ticket("a") } == .admitted)
        for name in ["b", "c", "d", "e"] { #expect(admission.enter(limit: 1) { r.ticket(name) } == .queued) }
        // A reload raised the limit to 3: the next leave fills every free slot.
        admission.leave(limit: 3)
        #expect(r.events == ["b:admitted", "c:admitted", "d:admitted"])
        // A newcomer under the raised limit queues behind e (first come, first served) and both go once slots free.
        #expect(admission.enter(limit: 3) { r.ticket("f") } == .queued)
        // The limit turned off: everyone waiting goes.
        admission.leave(limit: nil)
        #expect(r.events == ["b:admitted", "c:admitted", "d:admitted", "e:admitted", "f:admitted"])
        #expect(admission.queued == 0)
    }

    @Test func aFullQueueTurnsANewcomerAway() {
        let admission = BackendAdmission()
        let r = Recorder()
        #expect(admission.enter(limit: 1, maxQueue: 1) { r.ticket("a") } == .admitted)
        #expect(admission.enter(limit: 1, maxQueue: 1) { r.ticket("b") } == .queued)
        #expect(admission.enter(limit: 1, maxQueue: 1) { r.ticket("c") } == .queueFull)
        #expect(admission.queued == 1)
        admission.leave(limit: 1)
        #expect(r.events == ["b:admitted"], "the turned-away newcomer was never queued")
        #expect(admission.enter(limit: 1, maxQueue: 0) { r.ticket("d") } == .queueFull, "maxQueue 0: no waiting at all")
    }

    @Test func aNewcomerFillsSlotsARaisedLimitFreed() {
        let admission = BackendAdmission()
        let r = Recorder()
        #expect(admission.enter(limit: 1) { r.ticket("a") } == .admitted)
        #expect(admission.enter(limit: 1) { r.ticket("b") } == .queued)
        // Limit raised to 3 and a newcomer arrives before anyone leaves: b and the newcomer both get slots, in order.
        #expect(admission.enter(limit: 3) { r.ticket("c") } == .queued)
        #expect(r.events == ["b:admitted", "c:admitted"])
        #expect(admission.admitted == 3)
    }
}
