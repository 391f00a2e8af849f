/// Why a node selection could not be built. Never a crash: every builder validates its input first.
public struct HashingError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case emptyNodeSet
        case invalidWeight(node: String, weight: Int)
        case duplicateNode(String)
        case tableSizeNotPrime(Int)
        case tooManyNodesForTable(nodes: Int, tableSize: Int)
        case invalidParameter(String)
        case unknownAlgorithm(String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// No nodes were given: no key can be mapped.
    public static let emptyNodeSet = Self(.emptyNodeSet)
    /// A node's weight is outside 1...``Node/maximumWeight`` (zero weights included).
    public static func invalidWeight(node: String, weight: Int) -> Self { Self(.invalidWeight(node: node, weight: weight)) }
    /// Two nodes share an id.
    public static func duplicateNode(_ id: String) -> Self { Self(.duplicateNode(id)) }
    /// A Maglev table size must be prime.
    public static func tableSizeNotPrime(_ size: Int) -> Self { Self(.tableSizeNotPrime(size)) }
    /// A Maglev table must be larger than the (weighted) node count.
    public static func tooManyNodesForTable(nodes: Int, tableSize: Int) -> Self {
        Self(.tooManyNodesForTable(nodes: nodes, tableSize: tableSize))
    }
    /// A tuning parameter is out of range (the message names it).
    public static func invalidParameter(_ message: String) -> Self { Self(.invalidParameter(message)) }
    /// An algorithm name that is not one of ``HashAlgorithm``'s.
    public static func unknownAlgorithm(_ name: String) -> Self { Self(.unknownAlgorithm(name)) }

    public var description: String {
        switch base {
        case .emptyNodeSet: "no nodes: a node selection needs at least one node"
        case .invalidWeight(let node, let weight):
            "node \(node) has weight \(weight); weights must be 1...\(Node.maximumWeight) (remove a node instead of weighting it 0)"
        case .duplicateNode(let id): "node \(id) is listed twice; node ids must be unique"
        case .tableSizeNotPrime(let size): "maglev table size \(size) is not prime"
        case .tooManyNodesForTable(let nodes, let size):
            "maglev table size \(size) is too small for \(nodes) weighted nodes; use a prime well above 100× the node count"
        case .invalidParameter(let message): message
        case .unknownAlgorithm(let name):
            "unknown hashing algorithm '\(name)'; expected one of \(HashAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }
}
