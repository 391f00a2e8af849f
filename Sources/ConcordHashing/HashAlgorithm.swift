/// The key→node algorithms by name, as configuration files and command lines spell them.
public enum HashAlgorithm: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case modulo
    case ring
    case jump
    case maglev
    case rendezvous

    /// Parses a name, with a clear error listing the valid ones.
    public init(name: String) throws(HashingError) {
        guard let algorithm = HashAlgorithm(rawValue: name.lowercased()) else { throw .unknownAlgorithm(name) }
        self = algorithm
    }

    /// Builds the selection for `nodes` with the algorithm's default parameters.
    public func makeSelection(nodes: [Node]) throws(HashingError) -> any NodeSelection {
        switch self {
        case .modulo: try ModuloHash(nodes: nodes)
        case .ring: try HashRing(nodes: nodes)
        case .jump: try JumpHash(nodes: nodes)
        case .maglev: try MaglevTable(nodes: nodes)
        case .rendezvous: try RendezvousHash(nodes: nodes)
        }
    }

    /// True for the algorithms that move only ≈1/(n+1) of keys when a node is added.
    public var isConsistent: Bool { self != .modulo }

    public var description: String { rawValue }
}
