/// What a flow being opened, or open, holds of the gateway's shared state: each is given back
/// exactly once, when the flow is refused or ends, whichever step it got to.
///
/// The decision (`FlowOpening`) keeps this tally so that no shell has to remember, per error
/// path, which of the budget, the balancer and the NAT table it already touched.
public struct FlowHoldings: Equatable, Sendable {
    /// Descriptors taken from the process's budget for the flow's sockets.
    public var descriptors = 0
    /// A target was picked: its balancer counts the flow as open until released.
    public var picked = false
    /// The backend picked (nil: the external load balancer, which keeps no count).
    public var backend: Int?
    /// The flow holds an entry, and so a NAT port, in the NAT table.
    public var natEntry = false

    public init(descriptors: Int = 0, picked: Bool = false, backend: Int? = nil, natEntry: Bool = false) {
        self.descriptors = descriptors
        self.picked = picked
        self.backend = backend
        self.natEntry = natEntry
    }

    /// Nothing to give back.
    public static let nothing = FlowHoldings()
}
