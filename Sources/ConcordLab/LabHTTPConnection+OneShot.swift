import NIOCore
import NIOHTTP1

extension LabHTTPConnection {
    /// One request on a fresh connection from 127.0.0.1, closed afterwards (readiness polls, metrics scrapes,
    /// the proxy's admin API, tests).
    public static func oneShot(
        _ method: HTTPMethod = .GET,
        port: Int,
        path: String,
        body: String? = nil,
        contentType: String? = nil,
        cookie: String? = nil,
        headers extra: [(name: String, value: String)] = [],
        timeout: TimeAmount = .seconds(2)
    ) async throws -> LabHTTPResponse {
        let connection = try await connect(port: port, sourceAddress: nil, timeout: timeout)
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "content-type", value: contentType) }
        if let cookie { headers.add(name: "cookie", value: cookie) }
        for field in extra { headers.add(name: field.name, value: field.value) }
        do {
            let response = try await connection.send(method: method, path: path, headers: headers, body: body, timeout: timeout)
            await connection.close()
            return response
        } catch {
            await connection.close()
            throw error
        }
    }
}
