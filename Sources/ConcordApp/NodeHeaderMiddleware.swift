import HTTPTypes
import Hummingbird

/// Adds `X-Concord-Node: <node id>` to every response, errors included, so clients and the lab see which node
/// answered.
struct NodeHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    static var headerName: HTTPField.Name { HTTPField.Name("X-Concord-Node")! }

    let nodeID: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[Self.headerName] = nodeID
            return response
        } catch let error as any HTTPResponseError {
            var response = try error.response(from: request, context: context)
            response.headers[Self.headerName] = nodeID
            return response
        }
    }
}
