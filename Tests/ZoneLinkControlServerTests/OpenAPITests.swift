import Foundation
import Testing
import Yams
@testable import ZoneLinkControlServer

/// docs/openapi.yaml is what the generated server registers, and holds what every operation
/// of ZoneLink answers.
@Suite("OpenAPI document")
struct OpenAPITests {
    static let documentPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.yaml").path

    static func document() throws -> [String: Any] {
        let text = try String(contentsOfFile: documentPath, encoding: .utf8)
        guard let document = try Yams.load(yaml: text) as? [String: Any] else { throw TestFailure("not a mapping") }
        return document
    }

    @Test func pathsAndMethodsAreTheRoutesServed() async throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.0.3")
        let paths = try #require(document["paths"] as? [String: Any])
        var documented: Set<String> = []
        for (path, item) in paths {
            for (method, operation) in try #require(item as? [String: Any]) where method != "parameters" {
                #expect((operation as? [String: Any])?["operationId"] is String, "\(method) \(path) has no operationId")
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        try await withServer { server in
            let served = Set(server.routes.all.map(\.description))
            #expect(documented == served, "only documented: \(documented.subtracting(served)); only served: \(served.subtracting(documented))")
        }
    }

    @Test func everyOperationDocumentsUnauthorizedAndADefaultError() throws {
        let paths = try #require(try Self.document()["paths"] as? [String: Any])
        for (path, item) in paths {
            for (method, operation) in try #require(item as? [String: Any]) where method != "parameters" {
                let responses = try #require((operation as? [String: Any])?["responses"] as? [String: Any], "\(method) \(path)")
                // `security: []` (the status page) needs no token, so it has no 401 to document.
                let public_ = ((operation as? [String: Any])?["security"] as? [Any])?.isEmpty == true
                #expect((public_ || responses["401"] != nil) && responses["default"] != nil, "\(method) \(path)")
            }
        }
    }
}
