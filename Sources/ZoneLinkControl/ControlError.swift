import ZoneLinkCore

/// Why the control plane refused an operation. Every message reads as advice to the user and
/// names the rule that refused it; `code` is stable for clients, `httpStatus` is the
/// suggested status. "Unauthorized" (no or unknown token, 401) is not here: the shell
/// decides it before the control plane sees a principal.
public enum ControlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The principal may not do this (403). `rule` is a sentence naming the rule.
    case forbidden(rule: String)
    /// No such object (404).
    case notFound(String)
    /// The operation does not fit the current state (409): the object exists already, the
    /// connection is in another state, endpoints still depend on it.
    case conflict(String)
    /// The request breaks a validation rule (422). Key paths name request fields
    /// (`zones[0].address`) or, for problems elsewhere, the merged configuration.
    case invalid(issues: [ConfigIssue])
    /// The object is declared in the config file (409): change it there and reload.
    case fileManaged(String)
    /// DNS or the gateway could not apply the change (409: an address taken by another
    /// program, say); nothing was committed and the previous state keeps serving.
    case notApplied(String)
    /// The state store cannot be reached (503): nothing changed, DNS and the gateway keep
    /// serving the last applied catalog. The message names the store.
    case storeUnavailable(String)

    /// A stable machine-readable code for API bodies.
    public var code: String {
        switch self {
        case .forbidden: "forbidden"
        case .notFound: "not_found"
        case .conflict: "conflict"
        case .invalid: "invalid"
        case .fileManaged: "file_managed"
        case .notApplied: "not_applied"
        case .storeUnavailable: "store_unavailable"
        }
    }

    public var httpStatus: Int {
        switch self {
        case .forbidden: 403
        case .notFound: 404
        case .conflict, .fileManaged, .notApplied: 409
        case .invalid: 422
        case .storeUnavailable: 503
        }
    }

    /// One human sentence (several, one per issue, for `.invalid`).
    public var message: String {
        switch self {
        case .forbidden(let rule): rule
        case .notFound(let message), .conflict(let message), .fileManaged(let message), .notApplied(let message),
            .storeUnavailable(let message): message
        case .invalid(let issues): issues.map(\.description).joined(separator: "; ")
        }
    }

    public var description: String { "\(code): \(message)" }
}
