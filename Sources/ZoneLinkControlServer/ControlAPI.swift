import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import OpenAPIRuntime
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore

/// The HTTP/JSON API of docs/openapi.yaml as a Hummingbird responder.
///
/// The routes, the decoding of requests and the encoding of answers are generated from the
/// spec (`ZoneLinkAPI`); `ControlHandlers` carries each operation to the control plane. Here
/// is only what comes before an operation: a path that is not the spec's is 404, a known
/// path with another method 405 with `Allow`, then the token (`Authorization: Bearer TOKEN`,
/// else 401), and the request counted by route and status. Every error is JSON:
/// `{"code", "message", "issues"}`.
public struct ControlAPI: HTTPResponder {
    public typealias Context = BasicRequestContext

    public let service: ControlService
    public let tokens: TokenStore
    public let metrics: ControlMetrics
    /// The routes the generated server registered (the spec's paths and methods).
    public let routes: APIRoutes
    let router: RouterResponder<Context>
    let logger: Logger

    /// How many connections, how long each may take to send its request, and the largest
    /// body accepted (413 above): `control:`. `ControlServer` enforces the rest.
    public let bounds: ControlSettings
    /// The API's connections now, counted against `bounds.connections` (shown in /metrics).
    public let connections: ControlConnections

    public init(
        service: ControlService, tokens: TokenStore, metrics: ControlMetrics = ControlMetrics(),
        bounds: ControlSettings = ControlSettings(),
        nat: @escaping @Sendable () async -> [Components.Schemas.NATRow] = { [] },
        health: @escaping @Sendable () async -> GatewayHealth = { GatewayHealth() },
        explainDNS: @escaping DNSExplainer = { _ in throw ControlError.notApplied("no DNS server answers in this process") },
        logger: Logger = Logger(label: "zonelink.control")
    ) throws {
        self.service = service
        self.tokens = tokens
        self.metrics = metrics
        self.bounds = bounds
        self.connections = ControlConnections(limit: bounds.connections)
        self.logger = logger
        let handlers = ControlHandlers(
            service: service, counters: metrics, connections: connections, natTable: nat, gatewayHealth: health, explainer: explainDNS)
        let (routes, router) = try APIRoutes.register(
            handlers,
            configuration: Configuration(jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes]),
            middlewares: [ErrorBodies(log: { [logger] in logger.error("\($0)") }), BodyGuard(maxBodySize: bounds.maxBodySize)])
        self.routes = routes
        self.router = router.buildResponder()
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let (label, response) = await answer(request, context: context)
        metrics.countRequest(route: label, status: Int(response.status.code))
        return response
    }

    /// The response, and the route label to count it under.
    func answer(_ request: Request, context: Context) async -> (String, Response) {
        let route: APIRoute
        switch routes.resolve(method: request.method, path: request.uri.path) {
        case .notFound:
            return ("unmatched", Self.response(APIError.notFound(path: request.uri.path)))
        case .methodNotAllowed(let methods):
            return ("unmatched", Self.response(APIError.methodNotAllowed(request.method, path: request.uri.path, allowed: methods)))
        case .route(let found):
            route = found
        }
        // The status page asks for a token itself: it is static and holds no data.
        if Self.withoutToken.contains(route.description) {
            do {
                return (route.description, try await router.respond(to: request, context: context))
            } catch {
                return (route.description, Self.response(APIError.internalError(error)))
            }
        }
        guard let principal = tokens.principal(authorization: request.headers[.authorization]) else {
            return (route.description, Self.response(APIError.unauthorized(missing: request.headers[.authorization] == nil)))
        }
        do {
            let response = try await RequestPrincipal.$current.withValue(principal) {
                try await router.respond(to: request, context: context)
            }
            return (route.description, response)
        } catch {
            logger.error("control API: \(route): \(error)")
            return (route.description, Self.response(APIError.internalError(error)))
        }
    }

    /// The routes answered without a token (`security: []` in docs/openapi.yaml).
    static let withoutToken: Set<String> = ["GET /ui"]

    static func response(_ error: APIError) -> Response {
        var headers = error.headers
        headers[.contentType] = APIError.contentType
        return Response(status: error.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: error.json)))
    }
}
