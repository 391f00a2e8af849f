import NIOCore

/// One client connection's current timeout (keep-alive, header read, response), kept without scheduling and
/// cancelling a timer task at every phase change — that was three schedules and three cancels per proxied
/// request, each a locked heap operation on the event loop and often a `timerfd` update.
///
/// Instead at most one task is pending, due no later than the deadline. An arm schedules it no later than
/// `granularity` (the shortest timeout in use) from now, so while it is pending, moving the deadline is a plain
/// store: every new deadline is at least `granularity` away, so the pending task is never late for it. When the
/// task fires early it asks for a new one at the deadline itself, so an idle keep-alive connection wakes once per
/// keep-alive timeout (before 2026-12-03: once per `granularity`, six times a minute with the default 10-s header
/// timeout — 4–5 % of a core for 19,500 idle connections); the next request's earlier header deadline then
/// schedules anew, once. Pure: the handler carries out what it returns.
struct ConnectionDeadline {
    enum Fired: Equatable {
        /// The deadline passed: handle the timeout.
        case expired
        /// Not yet: schedule the task again at this time.
        case reschedule(NIODeadline)
        /// No deadline is armed; nothing to do.
        case idle
    }

    /// The shortest timeout the connection arms; the pending task is never further away than this.
    let granularity: TimeAmount
    private(set) var deadline: NIODeadline?
    /// When the pending task fires, or `nil` when none is pending.
    private(set) var taskDue: NIODeadline?

    init(granularity: TimeAmount) { self.granularity = granularity }

    var isArmed: Bool { deadline != nil }

    /// Sets the deadline. - Returns: when a task must be scheduled (replacing any pending one), or `nil` when the
    /// pending task fires in time.
    mutating func arm(at deadline: NIODeadline, now: NIODeadline) -> NIODeadline? {
        self.deadline = deadline
        if let taskDue, taskDue <= deadline { return nil }
        let due = min(deadline, now + granularity)
        taskDue = due
        return due
    }

    /// No timeout applies for now (the pending task, if any, finds nothing to do).
    mutating func disarm() { deadline = nil }

    /// The pending task was cancelled (the connection is going away).
    mutating func cancel() {
        deadline = nil
        taskDue = nil
    }

    /// The pending task ran at `now`.
    mutating func taskFired(now: NIODeadline) -> Fired {
        taskDue = nil
        guard let deadline else { return .idle }
        guard now < deadline else {
            self.deadline = nil
            return .expired
        }
        taskDue = deadline
        return .reschedule(deadline)
    }
}
