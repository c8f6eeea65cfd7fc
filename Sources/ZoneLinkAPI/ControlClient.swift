import Foundation
import HTTPTypes
import OpenAPIRuntime

extension Client {
    /// The generated client of the control API at `address`, sending `token` as
    /// `Authorization: Bearer TOKEN` with every request.
    ///
    /// Every answer outside 2xx is thrown as a `ControlRefusal` carrying the API's error body,
    /// so callers read only the documented success and handle refusals in one place.
    public static func control(address: ControlServerAddress, token: String?) -> Client {
        Client(
            serverURL: URL(string: "http://zonelink")!,
            transport: ControlTransport(address: address),
            middlewares: [BearerToken(token: token), RefusalsThrown()])
    }
}

/// An answer outside 2xx: the status and, when the body is the API's `Error`, its code,
/// message and issues.
public struct ControlRefusal: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var error: Components.Schemas._Error?
    /// The body as text when it is not the API's `Error` (a proxy's page, say).
    public var text: String

    public var description: String {
        guard let error else { return "HTTP \(status): \(text.prefix(200))" }
        return "\(error.message) (\(error.code))"
    }
}

/// The refusal a generated call threw, if that is what failed.
extension ControlRefusal {
    public init?(_ thrown: any Error) {
        if let refusal = thrown as? ControlRefusal {
            self = refusal
        } else if let client = thrown as? ClientError, let refusal = client.underlyingError as? ControlRefusal {
            self = refusal
        } else {
            return nil
        }
    }
}

/// Adds `Authorization: Bearer TOKEN` when there is a token.
struct BearerToken: ClientMiddleware {
    var token: String?

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        if let token { request.headerFields[.authorization] = "Bearer \(token)" }
        return try await next(request, body, baseURL)
    }
}

/// Turns every answer outside 2xx into a thrown `ControlRefusal`.
struct RefusalsThrown: ClientMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.kind != .successful else { return (response, responseBody) }
        var bytes: [UInt8] = []
        if let responseBody { bytes = try await [UInt8](collecting: responseBody, upTo: 1 << 20) }
        throw ControlRefusal(
            status: response.status.code,
            error: try? JSONDecoder().decode(Components.Schemas._Error.self, from: Data(bytes)),
            text: String(decoding: bytes, as: UTF8.self))
    }
}
