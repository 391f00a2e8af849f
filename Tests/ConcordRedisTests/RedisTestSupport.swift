import Testing
@testable import ConcordRedis

/// The tests' client settings: generous connect and command timeouts, so a loaded CI machine (the whole suite runs
/// in parallel on two cores) does not turn a slow first command into a failure. Tests about timeouts set their own.
extension RedisClientConfiguration {
    static func testing(endpoints: [RedisEndpoint]) -> RedisClientConfiguration {
        RedisClientConfiguration(endpoints: endpoints, connectTimeout: .seconds(10), commandTimeout: .seconds(15))
    }

    static func testing(urls: [String]) throws -> RedisClientConfiguration {
        var configuration = try RedisClientConfiguration(urls: urls)
        configuration.connectTimeout = .seconds(10)
        configuration.commandTimeout = .seconds(15)
        return configuration
    }
}

extension RedisSessionStoreConfiguration {
    static func testing(urls: [String], keyPrefix: String = "concord:") throws -> RedisSessionStoreConfiguration {
        RedisSessionStoreConfiguration(client: try .testing(urls: urls), keyPrefix: keyPrefix)
    }
}


/// The error `command` fails with; nil, with an issue recorded, when it succeeds.
func sendError(
    _ client: RedisClient, _ command: RedisCommand, sourceLocation: SourceLocation = #_sourceLocation
) async -> RedisClientError? {
    do throws(RedisClientError) {
        _ = try await client.send(command)
        Issue.record("\(command.name) succeeded where it should fail", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
