import ArgumentParser

/// `concord bench …`: benchmarks that print figures (never timed unit tests). Build with `-c release`.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark and print its figures (use a release build: swift run -c release concord bench …).",
        subcommands: [BenchHashingCommand.self, BenchStoresCommand.self, BenchSessionsCommand.self]
    )
}
