import Foundation
import HTTPTypes
import OpenAPIRuntime
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore

/// An error answer of the control API: a status and the spec's `Error` body (a stable `code`,
/// a `message` naming the rule, the `issues` by key path). Every refusal, whether the router,
/// the token check, the body guard, the generated decoder or the control plane decided it,
/// leaves through here, so they all read alike.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var body: Components.Schemas._Error
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, code: String, message: String, issues: [Components.Schemas.Issue] = []) {
        self.status = status
        self.body = Components.Schemas._Error(code: code, message: message, issues: issues)
    }

    /// What the control plane refused, with the status its code calls for.
    init(_ error: ControlError) {
        var issues: [Components.Schemas.Issue] = []
        if case .invalid(let found) = error {
            issues = found.map { Components.Schemas.Issue(keyPath: $0.keyPath, problem: $0.problem, hint: $0.hint) }
        }
        self.init(HTTPResponse.Status(code: error.httpStatus), code: error.code, message: error.message, issues: issues)
    }

    static func notFound(path: String) -> APIError {
        APIError(.notFound, code: "not_found", message: "no resource \(path); see docs/openapi.yaml")
    }

    static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> APIError {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        var error = APIError(
            .methodNotAllowed, code: "method_not_allowed", message: "\(method.rawValue) is not allowed on \(path); allowed: \(allow)")
        error.headers[.allow] = allow
        return error
    }

    static func unauthorized(missing: Bool) -> APIError {
        var error = APIError(
            .unauthorized, code: "unauthorized",
            message: missing
                ? "no Authorization header: send Authorization: Bearer TOKEN (zonelink --token or ZONELINK_TOKEN)"
                : "the bearer token is unknown: only tokens whose SHA-256 digest is in the tokens file are accepted")
        error.headers[.wwwAuthenticate] = #"Bearer realm="zonelink""#
        return error
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(.contentTooLarge, code: "too_large", message: "the request body is larger than \(limit) bytes (control.maxBodySize)")
    }

    static func internalError(_ error: any Error) -> APIError {
        APIError(.internalServerError, code: "internal", message: "the request failed inside ZoneLink and changed nothing: \(error)")
    }

    /// A request the generated decoder refused: the field and the problem for a body that is
    /// not the operation's JSON, else the runtime's own reason (a missing body, a content
    /// type other than JSON).
    static func badRequest(_ error: ServerError) -> APIError {
        let what = "the body of \(error.operationID)"
        guard let decoding = error.underlyingError as? DecodingError else {
            return APIError(error.httpStatus, code: "bad_request", message: "\(what) was refused: \(error.underlyingError)")
        }
        let (path, problem) = describe(decoding)
        return APIError(
            .badRequest, code: "bad_request", message: "\(what) is not valid: \(path.isEmpty ? "" : path + ": ")\(problem)",
            issues: [Components.Schemas.Issue(keyPath: path, problem: problem, hint: "send a JSON object as docs/openapi.yaml describes it")])
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

    /// The body as JSON, keys sorted as every answer of the API.
    var json: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(body))) ?? Array(#"{"code":"internal","issues":[],"message":"unencodable error"}"#.utf8)
    }

    /// As the generated server labels every JSON answer.
    static let contentType = "application/json; charset=utf-8"

    /// The answer in the generated server's terms.
    var response: (HTTPResponse, HTTPBody) {
        var fields = headers
        fields[.contentType] = Self.contentType
        return (HTTPResponse(status: status, headerFields: fields), HTTPBody(json))
    }
}

/// Gives every refusal of a generated operation the spec's `Error` body: the control plane's
/// typed errors with their status, requests the generated decoder refused as `bad_request`
/// naming the field, anything else as `internal` (logged).
struct ErrorBodies: ServerMiddleware {
    var log: @Sendable (String) -> Void

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        do {
            return try await next(request, body, metadata)
        } catch let error as ServerError {
            if let refusal = error.underlyingError as? ControlError { return APIError(refusal).response }
            if let refusal = error.underlyingError as? APIError { return refusal.response }
            if error.operationInput == nil, error.httpStatus.kind == .clientError { return APIError.badRequest(error).response }
            log("control API: \(operationID): \(error.underlyingError)")
            return APIError.internalError(error.underlyingError).response
        } catch {
            log("control API: \(operationID): \(error)")
            return APIError.internalError(error).response
        }
    }
}

/// Reads a request body whole, up to `control.maxBodySize` (413 above; a body that does not
/// arrive complete is 400), and refuses a JSON object with a key twice (400 naming it) before
/// the generated decoder, which would keep one of them silently, sees it.
struct BodyGuard: ServerMiddleware {
    var maxBodySize: Int

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let body else { return try await next(request, nil, metadata) }
        var bytes: [UInt8] = []
        do {
            for try await chunk in body {
                guard bytes.count + chunk.count <= maxBodySize else { return APIError.tooLarge(limit: maxBodySize).response }
                bytes += chunk
            }
        } catch {
            // The connection ended mid-body (say, closed by control.bodyTimeout): nothing to decode.
            return APIError(.badRequest, code: "bad_request", message: "the request body did not arrive complete: \(error)").response
        }
        if let key = JSONDuplicateKeys.first(in: bytes) {
            return APIError(
                .badRequest, code: "bad_request", message: "the body of \(operationID) is not valid: \(key): the key appears twice",
                issues: [Components.Schemas.Issue(keyPath: key, problem: "appears twice in one object", hint: "send each key once")]
            ).response
        }
        return try await next(request, bytes.isEmpty ? nil : HTTPBody(bytes), metadata)
    }
}
