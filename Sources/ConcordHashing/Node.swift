/// A server that keys map to. Its identity is `id` (e.g. "10.0.0.7:8080" or "app-2"): every algorithm hashes the
/// id, never the position in a list, wherever the algorithm allows it.
public struct Node: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The stable name of the node; hashing uses it, so renaming a node remaps its keys.
    public var id: String
    /// Relative capacity, 1...``Node/maximumWeight``. A node of weight 2 receives about twice the keys of weight 1.
    public var weight: Int

    /// The largest weight accepted (bounds the memory of ring points and weighted slots).
    public static let maximumWeight = 1000

    public init(id: String, weight: Int = 1) {
        self.id = id
        self.weight = weight
    }

    public var description: String { weight == 1 ? id : "\(id)×\(weight)" }
}
