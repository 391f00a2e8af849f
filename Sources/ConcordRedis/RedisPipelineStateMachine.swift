import NIOCore

/// What a pipelined Redis connection has sent and not yet had answered: replies come back in request order, so
/// the oldest waiter gets the next reply. Pure: the ``RedisConnectionHandler`` carries out the actions.
struct RedisPipelineStateMachine<Waiter> {
    private enum State {
        /// Commands may be sent; `waiters` are the commands awaiting replies, oldest first.
        case open(waiters: CircularBuffer<Waiter>)
        /// The connection failed or closed; every later command fails with `error` at once.
        case closed(error: RedisClientError)
    }

    enum SendAction {
        case write
        case fail(RedisClientError)
    }

    enum ReplyAction {
        case succeed(Waiter)
        /// A push (RESP3 out-of-band message) is not a reply; nothing waits for it.
        case ignore
        /// A reply without a waiter: the stream is out of step and the connection must close.
        case closeConnection(RedisClientError)
    }

    private var state: State = .open(waiters: CircularBuffer(initialCapacity: 16))

    var pendingCount: Int {
        if case .open(let waiters) = state { waiters.count } else { 0 }
    }

    var isOpen: Bool { if case .open = state { true } else { false } }

    /// The command waiting longest for its reply.
    var oldest: Waiter? {
        if case .open(let waiters) = state { waiters.first } else { nil }
    }

    mutating func send(_ waiter: Waiter) -> SendAction {
        switch state {
        case .open(var waiters):
            state = .closed(error: .connectionClosed)  // avoid a copy of the buffer while mutating it
            waiters.append(waiter)
            state = .open(waiters: waiters)
            return .write
        case .closed(let error):
            return .fail(error)
        }
    }

    mutating func receive(_ reply: RESPValue) -> ReplyAction {
        if case .push = reply { return .ignore }
        switch state {
        case .open(var waiters):
            guard !waiters.isEmpty else {
                return .closeConnection(.protocolViolation("reply without a pending command"))
            }
            state = .closed(error: .connectionClosed)
            let waiter = waiters.removeFirst()
            state = .open(waiters: waiters)
            return .succeed(waiter)
        case .closed:
            return .ignore
        }
    }

    /// Closes the pipeline; returns the waiters to fail with `error`. Later sends fail with `error` too.
    mutating func close(_ error: RedisClientError) -> CircularBuffer<Waiter> {
        switch state {
        case .open(let waiters):
            state = .closed(error: error)
            return waiters
        case .closed:
            return []
        }
    }
}
