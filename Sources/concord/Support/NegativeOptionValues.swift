/// ArgumentParser reads `--users -5` as the option `--users` without a value followed by an unknown flag `-5`
/// ("Missing value for '--users <users>'"), which hides the real mistake. Every option of `concord` that takes a
/// number has a range check, so joining such a pair into `--users=-5` lets that check name the value instead.
/// No `concord` flag or short option is a digit, so an argument that reads as a negative number is always a value.
enum NegativeOptionValues {
    static func joined(_ arguments: [String]) -> [String] {
        var result: [String] = []
        result.reserveCapacity(arguments.count)
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            let next = arguments.index(after: index)
            if argument.hasPrefix("--"), argument.count > 2, !argument.contains("="),
               next < arguments.endIndex, isNegativeNumber(arguments[next]) {
                result.append(argument + "=" + arguments[next])
                index = arguments.index(after: next)
            } else {
                result.append(argument)
                index = next
            }
        }
        return result
    }

    static func isNegativeNumber(_ text: String) -> Bool {
        guard text.hasPrefix("-"), text.count > 1 else { return false }
        return Double(text) != nil
    }
}
