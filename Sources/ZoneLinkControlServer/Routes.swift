import Foundation
import HTTPTypes

/// The operations of the HTTP API, named as docs/openapi.yaml's `operationId`s.
public enum APIOperation: String, CaseIterable, Sendable {
    case listServices, createService, showService, updateService, deleteService
    case listWhitelist, addWhitelistEntry, removeWhitelistEntry
    case listConnections, acceptConnection, rejectConnection, disconnectConnection
    case listEndpoints, createEndpoint, showEndpoint, deleteEndpoint
    case listNAT, health, metrics
}

/// One route: a method and a path template whose `{name}` segments are parameters.
public struct APIRoute: Sendable, CustomStringConvertible {
    public let method: HTTPRequest.Method
    /// `/v1/services/{service}`, as in docs/openapi.yaml.
    public let template: String
    public let operation: APIOperation
    let segments: [Segment]

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    init(_ method: HTTPRequest.Method, _ template: String, _ operation: APIOperation) {
        self.method = method
        self.template = template
        self.operation = operation
        self.segments = template.split(separator: "/").map { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter(String(part.dropFirst().dropLast())) : .literal(String(part))
        }
    }

    public var description: String { "\(method.rawValue) \(template)" }

    /// The parameters when `path` (split and percent-decoded) fits the template.
    func match(_ path: [String]) -> [String: String]? {
        guard path.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, path) {
            switch segment {
            case .literal(let literal): guard literal == part else { return nil }
            case .parameter(let name): parameters[name] = part
            }
        }
        return parameters
    }

    /// Everything ZoneLink serves; docs/openapi.yaml describes exactly these.
    public static let all: [APIRoute] = [
        APIRoute(.get, "/v1/services", .listServices),
        APIRoute(.post, "/v1/services", .createService),
        APIRoute(.get, "/v1/services/{service}", .showService),
        APIRoute(.patch, "/v1/services/{service}", .updateService),
        APIRoute(.delete, "/v1/services/{service}", .deleteService),
        APIRoute(.get, "/v1/services/{service}/whitelist", .listWhitelist),
        APIRoute(.post, "/v1/services/{service}/whitelist", .addWhitelistEntry),
        APIRoute(.delete, "/v1/services/{service}/whitelist/{account}", .removeWhitelistEntry),
        APIRoute(.get, "/v1/services/{service}/connections", .listConnections),
        APIRoute(.post, "/v1/services/{service}/connections/{endpoint}/accept", .acceptConnection),
        APIRoute(.post, "/v1/services/{service}/connections/{endpoint}/reject", .rejectConnection),
        APIRoute(.post, "/v1/services/{service}/connections/{endpoint}/disconnect", .disconnectConnection),
        APIRoute(.get, "/v1/endpoints", .listEndpoints),
        APIRoute(.post, "/v1/endpoints", .createEndpoint),
        APIRoute(.get, "/v1/endpoints/{endpoint}", .showEndpoint),
        APIRoute(.delete, "/v1/endpoints/{endpoint}", .deleteEndpoint),
        APIRoute(.get, "/v1/nat", .listNAT),
        APIRoute(.get, "/v1/health", .health),
        APIRoute(.get, "/metrics", .metrics),
    ]

    /// What a request path resolves to.
    enum Resolution {
        case route(APIRoute, [String: String])
        /// The path exists, but not with this method: the methods it has.
        case methodNotAllowed([HTTPRequest.Method])
        case notFound
    }

    /// Resolves a raw request path (without the query).
    static func resolve(method: HTTPRequest.Method, path rawPath: String) -> Resolution {
        guard rawPath.hasPrefix("/") else { return .notFound }
        var path: [String] = []
        for part in rawPath.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard !part.isEmpty, let decoded = String(part).removingPercentEncoding, !decoded.isEmpty else { return .notFound }
            path.append(decoded)
        }
        var allowed: [HTTPRequest.Method] = []
        for route in all {
            guard let parameters = route.match(path) else { continue }
            if route.method == method { return .route(route, parameters) }
            allowed.append(route.method)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed)
    }
}
