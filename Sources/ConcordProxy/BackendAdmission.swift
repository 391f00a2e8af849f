import NIOConcurrencyHelpers
import NIOCore

/// One backend's admission when `limits.maxRequestsPerBackend` is set (HAProxy's `maxconn` with its queue): at most
/// that many requests (L7) or connections (L4) go to the backend at once; the rest wait here, first come first
/// served, until one ends — instead of piling up in the backend's accept queue, where a restart resets them. A
/// waiter whose backend goes down or leaves is handed back for a new pick (redispatch). Shared by every event loop
/// (one lock), and only touched when the limit is set: without it a request never takes this lock.
final class BackendAdmission: Sendable {
    /// How a waiter's wait ended; delivered on the waiter's event loop.
    enum Outcome: Sendable, Equatable {
        /// It holds a slot now and goes to the backend.
        case admitted
        /// The backend went down or left the membership: pick again (it holds no slot).
        case redispatched
    }

    /// One waiting request or connection. Its callback runs once, on its event loop (or the direct TCP engine's
    /// forwarding loop: `execute` runs work there).
    final class Ticket: Sendable {
        private let execute: @Sendable (@escaping @Sendable () -> Void) -> Void
        private let callback: @Sendable (Ticket, Outcome) -> Void

        init(eventLoop: any EventLoop, _ callback: @escaping @Sendable (Ticket, Outcome) -> Void) {
            self.execute = { eventLoop.execute($0) }
            self.callback = callback
        }

        init(execute: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void,
             _ callback: @escaping @Sendable (Ticket, Outcome) -> Void) {
            self.execute = execute
            self.callback = callback
        }

        fileprivate func deliver(_ outcome: Outcome) {
            execute { self.callback(self, outcome) }
        }
    }

    private struct State {
        var admitted = 0
        var waiting = CircularBuffer<Ticket>()
    }

    private let state = NIOLockedValueBox(State())

    /// Requests or connections holding a slot.
    var admitted: Int { state.withLockedValue { $0.admitted } }
    /// Waiters in the queue.
    var queued: Int { state.withLockedValue { $0.waiting.count } }

    /// How ``enter(_:limit:maxQueue:)`` went.
    enum Entry: Equatable {
        /// A slot is held.
        case admitted
        /// Waiting: the ticket's callback says how the wait ends.
        case queued
        /// The queue already holds `maxQueue` waiters: not queued.
        case queueFull
    }

    /// Takes a slot if fewer than `limit` are held and nobody waits (first come, first served); otherwise queues the
    /// ticket `queueing` makes (only then: a request admitted at once allocates nothing) — unless `maxQueue` waiters
    /// are already there.
    func enter(limit: Int, maxQueue: Int? = nil, queueing makeTicket: () -> Ticket) -> Entry {
        let (entry, granted) = state.withLockedValue { state -> (Entry, [Ticket]) in
            if state.admitted < limit && state.waiting.isEmpty {
                state.admitted += 1
                return (.admitted, [])
            }
            if let maxQueue, state.waiting.count >= maxQueue { return (.queueFull, []) }
            state.waiting.append(makeTicket())
            // Free slots with waiters ahead happen only after a reload raised the limit: fill them now.
            return (.queued, Self.grant(in: &state, limit: limit))
        }
        for waiter in granted { waiter.deliver(.admitted) }
        return entry
    }

    /// A slot holder ended: the slot goes to the first waiter (its callback gets `.admitted`), or is freed. With
    /// `limit` raised by a reload (or `nil`: the limit was turned off) more waiters may go at once.
    func leave(limit: Int?) {
        let granted = state.withLockedValue { state -> [Ticket] in
            state.admitted -= 1
            return Self.grant(in: &state, limit: limit ?? Int.max)
        }
        for ticket in granted { ticket.deliver(.admitted) }
    }

    private static func grant(in state: inout State, limit: Int) -> [Ticket] {
        var granted: [Ticket] = []
        while let first = state.waiting.first, state.admitted < limit {
            state.waiting.removeFirst()
            state.admitted += 1
            granted.append(first)
        }
        return granted
    }

    /// Takes `ticket` out of the queue (its client went away or its queue timeout passed). `false` when it was no
    /// longer queued: a slot was granted to it (or it was redispatched) and its callback is on its way.
    func withdraw(_ ticket: Ticket) -> Bool {
        state.withLockedValue { state in
            guard let index = state.waiting.firstIndex(where: { $0 === ticket }) else { return false }
            state.waiting.remove(at: index)
            return true
        }
    }

    /// Empties the queue: every waiter picks again (the backend went down or was removed). Returns how many.
    @discardableResult
    func redispatchAll() -> Int {
        let waiters = state.withLockedValue { state -> CircularBuffer<Ticket> in
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for ticket in waiters { ticket.deliver(.redispatched) }
        return waiters.count
    }
}
