import ArgumentParser
import NIOCore
import NIOPosix

/// `--nio-global-executor`: SwiftNIO's singleton event loops become Swift Concurrency's global executor, as Vapor's
/// app template does. Tasks then run on the loops and stay on the one they run on, so a task talking to Redis
/// through the default store (whose connections live on the same loops) pays no thread hand-off per command
/// (docs/stores-redis.md). Call once, before the command starts any work.
enum NIOGlobalExecutor {
    static func install() throws {
        guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
            throw ValidationError("--nio-global-executor: SwiftNIO could not become the global executor on this platform")
        }
    }
}
