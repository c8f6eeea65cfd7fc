/// Who asks. The I/O shell turns a bearer token into a principal (an unknown token is its
/// 401, decided before the control plane is asked); the control plane decides the rest.
public enum Principal: Hashable, Sendable, CustomStringConvertible {
    /// A tenant, by its 16-digit account ID: a provider of its own services and a consumer
    /// of the services whose whitelist holds it.
    case account(String)
    /// The operator of this ZoneLink: sees everything and may act on every object, but acts
    /// for no account of its own, so creating an object names the account it is for.
    case `operator`

    /// The account ID, or nil for the operator.
    public var accountID: String? {
        if case .account(let id) = self { return id }
        return nil
    }

    public var isOperator: Bool { self == .operator }

    public var description: String {
        switch self {
        case .account(let id): "account \(id)"
        case .operator: "the operator"
        }
    }
}
