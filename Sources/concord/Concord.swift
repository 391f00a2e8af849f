import ArgumentParser

/// `concord`: the proxy, the demo app, the lab, and the benchmarks, in one binary.
@main
struct Concord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "concord",
        abstract: "Keep a user's web session consistent across a web tier behind a reverse proxy.",
        discussion: """
            Concord ships every common way of making a session follow a user across servers \
            (replication, encrypted cookies, proxy hashing, sticky cookies, backend stores, a replica ring) \
            and measures what each one costs when servers restart, scale out and crash.

            Start with `concord lab`: every strategy on a real local cluster (release build: swift run -c release \
            concord lab), then `concord lab --strategies store,ring --users 200` for a smaller experiment.
            See README.md and docs/ for the strategy guide.
            """,
        version: ConcordVersion.current,
        subcommands: [ProxyCommand.self, LabCommand.self, AppCommand.self, BenchCommand.self]
    )

    static func main() async {
        await main(NegativeOptionValues.joined(Array(CommandLine.arguments.dropFirst())))
    }
}

enum ConcordVersion {
    static let current = "0.1.0"
}
