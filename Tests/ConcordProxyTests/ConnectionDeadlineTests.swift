import NIOCore
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct ConnectionDeadlineTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test func movingTheDeadlineLaterNeedsNoNewTask() {
        var deadline = ConnectionDeadline(granularity: .seconds(10))
        // First arm: a task at the deadline (sooner than the granularity).
        #expect(deadline.arm(at: t0 + .seconds(10), now: t0) == t0 + .seconds(10))
        // Every later phase change is a plain store while that task is pending.
        #expect(deadline.arm(at: t0 + .seconds(61), now: t0 + .seconds(1)) == nil)
        deadline.disarm()
        #expect(!deadline.isArmed)
        #expect(deadline.arm(at: t0 + .seconds(62), now: t0 + .seconds(2)) == nil)
        // The task fires early: it asks for the next one at the deadline itself (an idle connection wakes once per
        // timeout, not once per granularity).
        #expect(deadline.taskFired(now: t0 + .seconds(10)) == .reschedule(t0 + .seconds(62)))
        // An earlier deadline than that task (the next request's header timeout) schedules anew, within the
        // granularity, and later phases are plain stores again.
        #expect(deadline.arm(at: t0 + .seconds(30), now: t0 + .seconds(20)) == t0 + .seconds(30))
        #expect(deadline.arm(at: t0 + .seconds(81), now: t0 + .seconds(21)) == nil)
        #expect(deadline.taskFired(now: t0 + .seconds(30)) == .reschedule(t0 + .seconds(81)))
        // Disarmed when the task fires: nothing to do and no new task.
        deadline.disarm()
        #expect(deadline.taskFired(now: t0 + .seconds(81)) == .idle)
        #expect(deadline.taskDue == nil)
    }

    @Test func expiresExactlyWhenTheDeadlinePasses() {
        var deadline = ConnectionDeadline(granularity: .seconds(10))
        #expect(deadline.arm(at: t0 + .seconds(25), now: t0) == t0 + .seconds(10))
        #expect(deadline.taskFired(now: t0 + .seconds(10)) == .reschedule(t0 + .seconds(25)))
        #expect(deadline.taskFired(now: t0 + .seconds(25)) == .expired)
        #expect(!deadline.isArmed)
        // A task that runs a little early (clock granularity) is not a timeout.
        _ = deadline.arm(at: t0 + .seconds(40), now: t0 + .seconds(30))
        #expect(deadline.taskFired(now: t0 + .seconds(40) - .nanoseconds(1)) == .reschedule(t0 + .seconds(40)))
    }

    @Test func anEarlierDeadlineThanThePendingTaskGetsItsOwnTask() {
        var deadline = ConnectionDeadline(granularity: .seconds(10))
        #expect(deadline.arm(at: t0 + .seconds(10), now: t0) == t0 + .seconds(10))
        // Not produced by the proxy's own timeouts (all ≥ granularity), but never late if it happens.
        #expect(deadline.arm(at: t0 + .seconds(3), now: t0 + .seconds(1)) == t0 + .seconds(3))
        #expect(deadline.taskDue == t0 + .seconds(3))
        deadline.cancel()
        #expect(deadline.taskDue == nil && !deadline.isArmed)
    }

    /// The invariant that makes the plain store safe: with every timeout ≥ granularity, the pending task is
    /// never due after the armed deadline, so a timeout is never detected late.
    @Test func thePendingTaskIsNeverLateForAnyDeadline() {
        var rng = SystemRandomNumberGenerator()
        var deadline = ConnectionDeadline(granularity: .seconds(2))
        var now = t0
        for _ in 0..<10_000 {
            now = now + .milliseconds(Int64.random(in: 0...3_000, using: &rng))
            if let due = deadline.taskDue, due <= now {
                if case .reschedule(let next) = deadline.taskFired(now: now) { #expect(next > now) }
                continue
            }
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: deadline.disarm()
            default: _ = deadline.arm(at: now + .milliseconds(Int64.random(in: 2_000...60_000, using: &rng)), now: now)
            }
            if let armed = deadline.deadline {
                let due = deadline.taskDue
                #expect(due != nil && due! <= armed)
            }
        }
    }
}
