import ZoneLinkCore

/// Turns the validator's key paths into the merged configuration into paths a user can act on.
///
/// API objects follow the file's in the merged configuration, so `endpoints[3]` may be an
/// endpoint the file does not have. The object an operation creates or changes gets paths
/// relative to its request (`endpoints[3].zones[0].address` → `zones[0].address`); other API
/// objects are named by ID (`endpoints[ep-x].vpc`); the file's keep their paths.
struct IssuePaths {
    enum Subject: Equatable {
        case none
        case service(String)
        case endpoint(String)
    }

    private struct APIObject {
        var subject: Subject
        var mergedPath: String
        var namedPath: String
    }

    private let objects: [APIObject]

    init(base: Configuration, state: ControlState) {
        let services = state.services.enumerated().map { i, record in
            APIObject(
                subject: .service(record.id), mergedPath: "endpointServices[\(base.endpointServices.count + i)]",
                namedPath: "endpointServices[\(record.id)]")
        }
        let endpoints = state.endpoints.enumerated().map { i, record in
            APIObject(
                subject: .endpoint(record.id), mergedPath: "endpoints[\(base.endpoints.count + i)]",
                namedPath: "endpoints[\(record.id)]")
        }
        self.objects = services + endpoints
    }

    func rewrite(_ issues: [ConfigIssue], relativeTo subject: Subject = .none) -> [ConfigIssue] {
        issues.map { issue in
            var issue = issue
            for object in objects {
                guard let rest = Self.remainder(of: issue.keyPath, after: object.mergedPath) else { continue }
                if object.subject == subject {
                    issue.keyPath = rest
                } else {
                    issue.keyPath = rest.isEmpty ? object.namedPath : "\(object.namedPath).\(rest)"
                    issue.problem += " (created through the API)"
                }
                break
            }
            return issue
        }
    }

    /// `path` without `prefix` and the dot after it; nil when `path` is not under `prefix`.
    static func remainder(of path: String, after prefix: String) -> String? {
        if path == prefix { return "" }
        guard path.hasPrefix(prefix + ".") else { return nil }
        return String(path.dropFirst(prefix.count + 1))
    }
}
