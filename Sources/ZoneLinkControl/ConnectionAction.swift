import ZoneLinkCore

/// What a provider does to a connection, and the transitions it allows (the console's
/// "Allow", "Reject" and "Disconnect"). Anything else is a conflict naming the current state.
public enum ConnectionAction: String, Hashable, Sendable, Codable, CaseIterable {
    case accept, reject, disconnect

    /// The states this action applies to.
    public var appliesTo: [ConnectionState] {
        switch self {
        case .accept: [.disconnected, .rejected]
        case .reject: [.disconnected, .connected]
        case .disconnect: [.connected]
        }
    }

    /// The state the action leads to.
    public var target: ConnectionState {
        switch self {
        case .accept: .connected
        case .reject: .rejected
        case .disconnect: .disconnected
        }
    }

    /// The next state, or nil when the action does not apply to `state`.
    public func apply(to state: ConnectionState) -> ConnectionState? {
        appliesTo.contains(state) ? target : nil
    }

    /// The state of a new endpoint's connection: the console's "Automatically Accept".
    public static func initialState(autoAccept: Bool) -> ConnectionState {
        autoAccept ? .connected : .disconnected
    }
}
