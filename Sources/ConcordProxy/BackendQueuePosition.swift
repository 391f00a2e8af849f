import NIOCore

/// A connection handler that may wait in a backend's queue: it keeps its ``BackendQueuePosition`` and hears, on
/// its event loop, how a wait ended — only for its current wait; what arrives for a wait it gave up is handled by
/// the position.
protocol BackendQueueWaiter: AnyObject, SendableMetatype {
    var queuePosition: BackendQueuePosition { get set }
    /// The queue settings of the handler's connection; `nil` without `limits.maxRequestsPerBackend`.
    var queueSettings: BackendQueuePosition.Settings? { get }
    /// The wait ended (`.admitted`: the slot is held now; `.redispatched`: pick again).
    func queueWaitEnded(_ outcome: BackendAdmission.Outcome)
    /// `limits.queueTimeout` passed; the position has left the queue.
    func queueWaitTimedOut()
}

/// One L7 exchange's or L4 connection's place under `limits.maxRequestsPerBackend`: waiting in its backend's
/// ``BackendAdmission`` queue (with the wait's timeout), holding a slot, or neither. Owned by the handler and used
/// on its event loop; it filters out what arrives after the handler gave up (a slot granted just as the client
/// left is given back here).
struct BackendQueuePosition {
    /// The queue's settings as a connection started with them, read once from its `ProxyLimits` (reading them
    /// through the runtime for every request would copy the configuration).
    struct Settings: Sendable {
        /// `maxRequestsPerBackend`.
        let limit: Int
        let timeout: Double
        let maxQueue: Int?
        let abortOnClose: Bool

        /// `nil` when `limits` sets no `maxRequestsPerBackend`: no queue.
        init?(_ limits: ProxyLimits) {
            guard let limit = limits.maxRequestsPerBackend else { return nil }
            self.limit = limit
            self.timeout = limits.queueTimeout
            self.maxQueue = limits.maxQueuePerBackend
            self.abortOnClose = limits.abortQueuedOnClose
        }
    }

    private var waiting: BackendAdmission.Ticket?
    private var timeoutTask: Scheduled<Void>?
    private var slot: BackendHandle?

    /// Whether a slot is held.
    var holdsSlot: Bool { slot != nil }
    /// Whether waiting in a queue.
    var isWaiting: Bool { waiting != nil }

    /// Takes a slot of `pick`'s backend (`.admitted`), or queues (`.queued`: `waiter` then hears how the wait ends),
    /// or neither when the backend's queue is full (`.queueFull`, counted).
    mutating func enter<Waiter: BackendQueueWaiter>(
        _ pick: Balancer.Pick, settings: Settings, metrics: ProxyMetrics, waiter: Waiter, on eventLoop: any EventLoop
    ) -> BackendAdmission.Entry {
        let handle = pick.handle
        let loopBound = NIOLoopBound(waiter, eventLoop: eventLoop)
        let entry = enter(pick, settings: settings, metrics: metrics) {
            BackendAdmission.Ticket(eventLoop: eventLoop) { ticket, outcome in
                loopBound.value.queueTicket(ticket, ended: outcome, handle: handle)
            }
        }
        if entry == .queued, let ticket = waiting {
            timeoutTask = eventLoop.scheduleTask(in: TimeAmount(seconds: settings.timeout)) {
                loopBound.value.queueTicketTimedOut(ticket, handle: handle)
            }
        }
        return entry
    }

    /// The same without an event loop (the direct TCP engine's loops): `makeTicket` says where the outcome goes, and
    /// the caller keeps the wait's timeout.
    mutating func enter(_ pick: Balancer.Pick, settings: Settings, metrics: ProxyMetrics,
                        makeTicket: () -> BackendAdmission.Ticket) -> BackendAdmission.Entry {
        var queued: BackendAdmission.Ticket?
        let entry = pick.handle.admission.enter(limit: settings.limit, maxQueue: settings.maxQueue) {
            let ticket = makeTicket()
            queued = ticket
            return ticket
        }
        switch entry {
        case .admitted:
            slot = pick.handle
        case .queued:
            waiting = queued
            metrics.queued.increment()
        case .queueFull:
            metrics.queueFull.increment()
        }
        return entry
    }

    /// A wait's outcome arrived: returns it if `ticket` is this position's current wait (a granted slot is held from
    /// now on), or `nil` for a wait given up earlier — a slot it was granted goes back at once (`limit` as now set).
    mutating func settle(_ ticket: BackendAdmission.Ticket, _ outcome: BackendAdmission.Outcome, handle: BackendHandle,
                         limit: Int?) -> BackendAdmission.Outcome? {
        guard ticket === waiting else {
            if outcome == .admitted { handle.admission.leave(limit: limit) }
            return nil
        }
        endWait()
        if outcome == .admitted { slot = handle }
        return outcome
    }

    /// Whether a timed-out `ticket` is the current wait; if so the position leaves the queue.
    fileprivate mutating func timedOut(_ ticket: BackendAdmission.Ticket, handle: BackendHandle) -> Bool {
        guard ticket === waiting else { return false }
        endWait()
        // `false`: a slot is on its way; settle sees the ticket stale and gives it back.
        _ = handle.admission.withdraw(ticket)
        return true
    }

    /// Leaves the queue if waiting, and gives the slot back if holding one (the request or connection ended).
    mutating func release(_ pick: Balancer.Pick, limit: Int?) {
        if let ticket = waiting {
            endWait()
            _ = pick.handle.admission.withdraw(ticket)
        }
        if let slot {
            self.slot = nil
            slot.admission.leave(limit: limit)
        }
    }

    /// Hands the held slot over to the caller (an L4 pair keeps it until it closes): the backend whose slot it
    /// is, or `nil` if none is held.
    mutating func handOffSlot() -> BackendHandle? {
        defer { slot = nil }
        return slot
    }

    private mutating func endWait() {
        waiting = nil
        timeoutTask?.cancel()
        timeoutTask = nil
    }
}

extension BackendQueueWaiter {
    fileprivate func queueTicket(_ ticket: BackendAdmission.Ticket, ended outcome: BackendAdmission.Outcome, handle: BackendHandle) {
        guard let outcome = queuePosition.settle(ticket, outcome, handle: handle, limit: queueSettings?.limit) else { return }
        queueWaitEnded(outcome)
    }

    fileprivate func queueTicketTimedOut(_ ticket: BackendAdmission.Ticket, handle: BackendHandle) {
        guard queuePosition.timedOut(ticket, handle: handle) else { return }
        queueWaitTimedOut()
    }
}
