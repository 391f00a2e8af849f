import NIOCore

/// Where a command's reply goes. A task waiting for one command is resumed directly (`task`): no future, no callback
/// and no second hop between the reply and its caller. Several commands sent together, and the handler's own tests,
/// use promises.
enum RedisReplyTarget: Sendable {
    case promise(EventLoopPromise<RESPValue>)
    case task(UnsafeContinuation<Result<RESPValue, RedisClientError>, Never>)

    func succeed(_ reply: RESPValue) {
        switch self {
        case .promise(let promise): promise.succeed(reply)
        case .task(let continuation): continuation.resume(returning: .success(reply))
        }
    }

    func fail(_ error: RedisClientError) {
        switch self {
        case .promise(let promise): promise.fail(error)
        case .task(let continuation): continuation.resume(returning: .failure(error))
        }
    }
}
