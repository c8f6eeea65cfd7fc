import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ZoneLinkControl
import ZoneLinkCore

/// The HTTP/JSON API (docs/openapi.yaml) as a Hummingbird responder.
///
/// A request is resolved against `APIRoute.all` (unknown path 404, known path with another
/// method 405 with `Allow`), then authenticated (`Authorization: Bearer TOKEN`, else 401),
/// then handed to the control plane as that principal: reads are answered from the current
/// plane, changes go through `ControlService.perform` (committed and published before the
/// response). Every error is JSON: `{"code", "message", "issues"}`.
public struct ControlAPI: HTTPResponder {
    public typealias Context = BasicRequestContext

    public let service: ControlService
    public let tokens: TokenStore
    public let metrics: ControlMetrics
    /// The gateway's NAT table now.
    public let nat: @Sendable () async -> [NATRow]
    /// The gateway's backends and zones now (`configSerial` is filled in here).
    public let health: @Sendable () async -> HealthReport
    let logger: Logger

    /// How many connections, how long each may take to send its request, and the largest
    /// body accepted (413 above): `control:`. `ControlServer` enforces the rest.
    public let bounds: ControlSettings
    /// The API's connections now, counted against `bounds.connections` (shown in /metrics).
    public let connections: ControlConnections
    var maxBodySize: Int { bounds.maxBodySize }

    public init(
        service: ControlService, tokens: TokenStore, metrics: ControlMetrics = ControlMetrics(),
        bounds: ControlSettings = ControlSettings(),
        nat: @escaping @Sendable () async -> [NATRow] = { [] },
        health: @escaping @Sendable () async -> HealthReport = { HealthReport() },
        logger: Logger = Logger(label: "zonelink.control")
    ) {
        self.service = service
        self.tokens = tokens
        self.metrics = metrics
        self.bounds = bounds
        self.connections = ControlConnections(limit: bounds.connections)
        self.nat = nat
        self.health = health
        self.logger = logger
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let (label, response) = await answer(request)
        metrics.countRequest(route: label, status: Int(response.status.code))
        return response
    }

    /// The response, and the route label to count it under.
    func answer(_ request: Request) async -> (String, Response) {
        let route: APIRoute
        let parameters: [String: String]
        switch APIRoute.resolve(method: request.method, path: request.uri.path) {
        case .notFound:
            return ("unmatched", Self.error(.notFound, ErrorBody(code: "not_found", message: "no resource \(request.uri.path); see docs/openapi.yaml")))
        case .methodNotAllowed(let methods):
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            var response = Self.error(.methodNotAllowed, ErrorBody(code: "method_not_allowed", message: "\(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(allow)"))
            response.headers[.allow] = allow
            return ("unmatched", response)
        case .route(let found, let values):
            route = found
            parameters = values
        }
        guard let principal = tokens.principal(authorization: request.headers[.authorization]) else {
            let missing = request.headers[.authorization] == nil
            var response = Self.error(.unauthorized, ErrorBody(
                code: "unauthorized",
                message: missing
                    ? "no Authorization header: send Authorization: Bearer TOKEN (zonelink --token or ZONELINK_TOKEN)"
                    : "the bearer token is unknown: only tokens whose SHA-256 digest is in the tokens file are accepted"))
            response.headers[.wwwAuthenticate] = #"Bearer realm="zonelink""#
            return (route.description, response)
        }
        do {
            return (route.description, try await handle(route.operation, parameters, request, as: principal))
        } catch let error as ControlError {
            return (route.description, Self.error(Self.status(error.httpStatus), ErrorBody(error)))
        } catch let error as RequestError {
            return (route.description, Self.error(error.status, error.body))
        } catch {
            logger.error("control API: \(route): \(error)")
            return (route.description, Self.error(.internalServerError, ErrorBody(code: "internal", message: "the request failed inside ZoneLink and changed nothing: \(error)")))
        }
    }

    // MARK: Operations

    func handle(_ operation: APIOperation, _ parameters: [String: String], _ request: Request, as principal: Principal) async throws -> Response {
        let serviceID = parameters["service"] ?? ""
        let endpointID = parameters["endpoint"] ?? ""
        let accountID = parameters["account"] ?? ""
        switch operation {
        case .listServices:
            return try Self.json(.ok, await service.current.listServices(by: principal))
        case .createService:
            let body = try await decode(CreateServiceRequest.self, from: request)
            return try Self.json(.created, await change(operation) { try $0.createService(body, by: principal) })
        case .showService:
            return try Self.json(.ok, await service.current.service(serviceID, by: principal))
        case .updateService:
            let body = try await decode(UpdateServiceRequest.self, from: request)
            return try Self.json(.ok, await change(operation) { try $0.updateService(serviceID, body, by: principal) })
        case .deleteService:
            return try Self.json(.ok, await change(operation) { try $0.deleteService(serviceID, by: principal) })
        case .listWhitelist:
            return try Self.json(.ok, await service.current.whitelist(of: serviceID, by: principal))
        case .addWhitelistEntry:
            let body = try await decode(AddWhitelistEntryRequest.self, from: request)
            return try Self.json(.created, await change(operation) { try $0.addToWhitelist(body.account, of: serviceID, by: principal) })
        case .removeWhitelistEntry:
            return try Self.json(.ok, await change(operation) {
                try $0.removeFromWhitelist(accountID, of: serviceID, by: principal)
            })
        case .listConnections:
            return try Self.json(.ok, await service.current.connections(of: serviceID, by: principal))
        case .acceptConnection, .rejectConnection, .disconnectConnection:
            let action: ConnectionAction = operation == .acceptConnection ? .accept : operation == .rejectConnection ? .reject : .disconnect
            return try Self.json(.ok, await change(operation) {
                try $0.changeConnection(action, service: serviceID, endpoint: endpointID, by: principal)
            })
        case .listEndpoints:
            return try Self.json(.ok, await service.current.listEndpoints(by: principal))
        case .createEndpoint:
            let body = try await decode(CreateEndpointRequest.self, from: request)
            return try Self.json(.created, await change(operation) { try $0.createEndpoint(body, by: principal) })
        case .showEndpoint:
            return try Self.json(.ok, await service.current.endpoint(endpointID, by: principal))
        case .deleteEndpoint:
            return try Self.json(.ok, await change(operation) { try $0.deleteEndpoint(endpointID, by: principal) })
        case .listNAT:
            let catalog = await service.catalog
            let rows = await nat()
            return try Self.json(.ok, principal.isOperator ? rows : rows.filter { row in
                catalog.endpoints.contains { $0.id == row.endpoint && $0.account == principal.accountID }
            })
        case .health:
            let catalog = await service.catalog
            var report = await health()
            if let account = principal.accountID {
                // Backends of the account's own load balancers; zones of the endpoints it may
                // see (its own, and those connecting to its services).
                let visible = Set(catalog.endpoints.filter {
                    $0.account == account || catalog.service($0.service)?.account == account
                }.map(\.id))
                report = HealthReport(
                    backends: report.backends.filter { catalog.loadBalancer($0.loadBalancer)?.account == account },
                    zones: report.zones.filter { visible.contains($0.endpoint) })
            }
            report.configSerial = catalog.serial
            return try Self.json(.ok, report)
        case .metrics:
            guard principal.isOperator else {
                throw ControlError.forbidden(rule: "\(principal) may not read metrics: they count every account's traffic, so only the operator may")
            }
            metrics.record(await service.catalog)
            metrics.record(connections)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }

    /// Runs a change through the service and counts it once committed.
    private func change<Value: Sendable>(
        _ operation: APIOperation, _ body: @Sendable (ControlPlane) throws -> Applied<Value>
    ) async throws -> Value {
        let value = try await service.perform(body)
        metrics.countChange(operation.rawValue)
        return value
    }

    // MARK: Bodies

    struct RequestError: Error {
        var status: HTTPResponse.Status
        var body: ErrorBody
    }

    static func status(_ code: Int) -> HTTPResponse.Status {
        switch code {
        case 403: .forbidden
        case 404: .notFound
        case 409: .conflict
        case 422: .unprocessableContent
        default: HTTPResponse.Status(code: code)
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func error(_ status: HTTPResponse.Status, _ body: ErrorBody) -> Response {
        (try? json(status, body)) ?? Response(status: status)
    }

    /// The request body as `T`: 413 when too large, 400 naming the field when not `T`.
    func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBodySize)
        } catch is NIOTooManyBytesError {
            throw RequestError(status: .contentTooLarge, body: ErrorBody(code: "too_large", message: "the request body is larger than \(maxBodySize) bytes (control.maxBodySize)"))
        } catch {
            // The connection ended mid-body (say, closed by control.bodyTimeout): nothing to decode.
            throw RequestError(status: .badRequest, body: ErrorBody(code: "bad_request", message: "the request body did not arrive complete: \(error)"))
        }
        let what = String(describing: T.self)
        let bytes = Array(buffer.readableBytesView)
        if let key = JSONDuplicateKeys.first(in: bytes) {
            throw RequestError(status: .badRequest, body: ErrorBody(
                code: "bad_request", message: "the body is not a valid \(what): \(key): the key appears twice",
                issues: [IssueBody(keyPath: key, problem: "appears twice in one object", hint: "send each key once")]))
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            let (path, problem) = Self.describe(error)
            throw RequestError(status: .badRequest, body: ErrorBody(
                code: "bad_request", message: "the body is not a valid \(what): \(path.isEmpty ? "" : path + ": ")\(problem)",
                issues: [IssueBody(keyPath: path, problem: problem, hint: "send a JSON object as docs/openapi.yaml describes \(what)")]))
        } catch {
            throw RequestError(status: .badRequest, body: ErrorBody(code: "bad_request", message: "the body is not a valid \(what): \(error)"))
        }
    }

    /// The key path (`zones[0].zone`) and the problem of a decoding error.
    static func describe(_ error: DecodingError) -> (String, String) {
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : "." + key.stringValue
                }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return (path(context.codingPath + [key]), "is missing")
        case .typeMismatch(let type, let context):
            return (path(context.codingPath), "expected \(jsonType(type))")
        case .valueNotFound(let type, let context):
            return (path(context.codingPath), "expected \(jsonType(type)), found null")
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? ("", "not valid JSON") : (path(context.codingPath), context.debugDescription)
        @unknown default:
            return ("", "\(error)")
        }
    }

    private static func jsonType(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Double.Type: "a number"
        default: String(describing: type).hasPrefix("Array") ? "an array" : "an object"
        }
    }
}
