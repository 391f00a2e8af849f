import Testing
@testable import ConcordHashing

@Suite(.timeLimit(.minutes(3))) struct BoundedLoadSelectorTests {
    /// Places keys one by one as a balancer would and checks the cap after every placement.
    @Test("no node ever exceeds its cap", arguments: [(HashAlgorithm.ring, 1.25), (.maglev, 1.1), (.rendezvous, 1.05)])
    func neverExceedsCap(algorithm: HashAlgorithm, factor: Double) throws {
        let selection = try algorithm.makeSelection(nodes: Fixture.nodes(10))
        let bounded = try BoundedLoadSelector(selection: selection, factor: factor)
        var loads = Array(repeating: 0, count: 10)
        var total = 0
        for key in Fixture.keyHashes(30_000) {
            let index = bounded.pick(for: key, totalLoad: total) { loads[$0] }
            #expect(loads[index] < bounded.capacity(ofNode: index, totalLoad: total))
            loads[index] += 1
            total += 1
        }
        let peakToMean = Fixture.peakToMean(loads)
        #expect(peakToMean <= factor + 1e-9, "peak/mean \(peakToMean) over factor \(factor)")
    }

    @Test func keysStayOnTheirOwnerUntilItSaturates() throws {
        let ring = try HashRing(nodes: Fixture.nodes(5))
        let bounded = try BoundedLoadSelector(selection: ring, factor: 1.25)
        let key = KeyHash.hash("user-1")
        let owner = ring.ownerIndex(for: key)
        // Owner under cap: it keeps the key.
        #expect(bounded.pick(for: key, totalLoad: 100) { $0 == owner ? 20 : 20 } == owner)
        // Owner at cap: the next candidate on the key's probe sequence takes it.
        let cap = bounded.capacity(ofNode: owner, totalLoad: 100)
        let second = ring.preferenceList(for: key, count: 2)[1]
        #expect(bounded.pick(for: key, totalLoad: 100) { $0 == owner ? cap : 10 } == second)
    }

    @Test func weightsRaiseTheCap() throws {
        let ring = try HashRing(nodes: [Node(id: "big", weight: 3), Node(id: "small")])
        let bounded = try BoundedLoadSelector(selection: ring, factor: 1.2)
        #expect(bounded.capacity(ofNode: 0, totalLoad: 99) == 90)  // 1.2 × 100 × 3/4
        #expect(bounded.capacity(ofNode: 1, totalLoad: 99) == 30)  // 1.2 × 100 × 1/4
    }

    @Test func factorMustExceedOne() throws {
        let ring = try HashRing(nodes: Fixture.nodes(3))
        #expect(throws: HashingError.self) { try BoundedLoadSelector(selection: ring, factor: 1.0) }
        #expect(throws: HashingError.self) { try BoundedLoadSelector(selection: ring, factor: .nan) }
    }
}
