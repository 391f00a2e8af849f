import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Free TCP ports on 127.0.0.1, found by binding port 0 and reading back what the kernel chose.
public enum LoopbackPort {
    /// A port that was free a moment ago. Ports handed out by this process are not handed out twice.
    public static func free() throws -> Int {
        for _ in 0..<64 {
            let port = try bindEphemeral()
            if claimed.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw LabError.childFailed("no free loopback port found")
    }

    private static let claimed = Mutex<Set<Int>>([])

    private static func bindEphemeral() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LabError.childFailed("socket(): errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw LabError.childFailed("bind(127.0.0.1:0): errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw LabError.childFailed("getsockname(): errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
