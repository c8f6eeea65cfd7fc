import Foundation
import Testing
import Yams
@testable import ZoneLinkControlServer

/// docs/openapi.yaml describes exactly what `ControlAPI` serves.
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

    @Test func pathsMethodsAndOperationIDsAreTheRoutes() throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.0.3")
        let paths = try #require(document["paths"] as? [String: Any])
        var documented: Set<String> = []
        for (path, item) in paths {
            for (method, operation) in try #require(item as? [String: Any]) where method != "parameters" {
                let id = (operation as? [String: Any])?["operationId"] as? String ?? "?"
                documented.insert("\(method.uppercased()) \(path) \(id)")
            }
        }
        let served = Set(APIRoute.all.map { "\($0.method.rawValue) \($0.template) \($0.operation.rawValue)" })
        #expect(documented == served, "only documented: \(documented.subtracting(served)); only served: \(served.subtracting(documented))")
        #expect(Set(APIRoute.all.map(\.operation)) == Set(APIOperation.allCases))
    }

    @Test func everyOperationDocumentsUnauthorizedAndADefaultError() throws {
        let paths = try #require(try Self.document()["paths"] as? [String: Any])
        for (path, item) in paths {
            for (method, operation) in try #require(item as? [String: Any]) where method != "parameters" {
                let responses = try #require((operation as? [String: Any])?["responses"] as? [String: Any], "\(method) \(path)")
                #expect(responses["401"] != nil && responses["default"] != nil, "\(method) \(path)")
            }
        }
    }
}
