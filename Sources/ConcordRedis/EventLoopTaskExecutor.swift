import NIOCore

/// A Swift `TaskExecutor` that runs jobs on one NIO event loop.
///
/// A task that awaits Redis replies from the global concurrent executor pays two thread hand-offs per command:
/// the command goes to the connection's event-loop thread, and the reply resumes the task on a pool thread.
/// Run such a task with this executor as its preference, on a client whose connections live on the same loop
/// (a one-loop `EventLoopGroup`), and both hand-offs disappear — the request, the reply and the continuation
/// all stay on one thread:
///
/// ```swift
/// let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
/// let store = try RedisSessionStore(configuration: configuration, eventLoopGroup: group)
/// let executor = EventLoopTaskExecutor(group.next())
/// try await withTaskExecutorPreference(executor) { _ = try await store.load(id: id) }
/// ```
/// Keep work between awaits short: everything else on that loop waits while it runs.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
