import Foundation
import HTTPTypes
import Hummingbird
import OpenAPIHummingbird
import OpenAPIRuntime
import ZoneLinkAPI

/// One route of the API: a method and a path template whose `{name}` segments are
/// parameters, as docs/openapi.yaml writes it and the generated server registers it.
public struct APIRoute: Sendable, Hashable, CustomStringConvertible {
    public let method: HTTPRequest.Method
    /// `/v1/services/{service}`.
    public let template: String
    let segments: [Segment]

    enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter
    }

    init(_ method: HTTPRequest.Method, _ template: String) {
        self.method = method
        self.template = template
        self.segments = template.split(separator: "/").map { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter : .literal(String(part))
        }
    }

    public var description: String { "\(method.rawValue) \(template)" }

    /// Whether `path` (split and percent-decoded) fits the template.
    func matches(_ path: [String]) -> Bool {
        guard path.count == segments.count else { return false }
        for (segment, part) in zip(segments, path) {
            if case .literal(let literal) = segment, literal != part { return false }
        }
        return true
    }
}

/// The routes the generated server registered, and what a request's method and path resolve
/// to among them. Hummingbird's router answers every miss with 404; the API answers a known
/// path with another method 405 and `Allow` (RFC 9110, 15.5.6), and checks the token only on
/// paths that exist, so the table is kept here, filled by the registration itself: the spec
/// stays the only list of routes.
public struct APIRoutes: Sendable {
    public private(set) var all: [APIRoute] = []

    /// What a request path resolves to.
    enum Resolution {
        case route(APIRoute)
        /// The path exists, but not with this method: the methods it has.
        case methodNotAllowed([HTTPRequest.Method])
        case notFound
    }

    /// Resolves a raw request path (without the query).
    func resolve(method: HTTPRequest.Method, path rawPath: String) -> Resolution {
        guard rawPath.hasPrefix("/") else { return .notFound }
        var path: [String] = []
        for part in rawPath.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard !part.isEmpty, let decoded = String(part).removingPercentEncoding, !decoded.isEmpty else { return .notFound }
            path.append(decoded)
        }
        var allowed: [HTTPRequest.Method] = []
        for route in all where route.matches(path) {
            if route.method == method { return .route(route) }
            allowed.append(route.method)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed)
    }

    /// Registers `handlers` (the generated server) on a new router, recording each route.
    static func register(
        _ handlers: some APIProtocol, configuration: Configuration, middlewares: [any ServerMiddleware]
    ) throws -> (APIRoutes, Router<BasicRequestContext>) {
        let recorder = Recorder(router: Router(context: BasicRequestContext.self))
        try handlers.registerHandlers(on: recorder, serverURL: URL(string: "/")!, configuration: configuration, middlewares: middlewares)
        return (recorder.routes, recorder.router)
    }

    /// A transport that hands every registration to Hummingbird's router and keeps a copy.
    private final class Recorder: ServerTransport {
        let router: Router<BasicRequestContext>
        var routes = APIRoutes()

        init(router: Router<BasicRequestContext>) { self.router = router }

        func register(
            _ handler: @Sendable @escaping (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?),
            method: HTTPRequest.Method, path: String
        ) throws {
            routes.all.append(APIRoute(method, path))
            router.register(handler, method: method, path: path)
        }
    }
}
