import ZoneLinkCore

/// Slots of something clients share (DNS-over-TCP connections, questions being forwarded):
/// at most `total` taken at once, and at most `perClient` by one source address, so that one
/// client's flood leaves the others their share. Pure bookkeeping: the caller acts on refusals.
public struct ClientQuota: Sendable {
    /// Why a slot was refused.
    public enum Refusal: Equatable, Sendable {
        /// `total` slots are taken.
        case total
        /// `perClient` slots are taken by this client.
        case perClient
    }

    public let total: Int
    public let perClient: Int
    /// Slots taken now.
    public private(set) var taken = 0
    /// Slots by client; a client leaves the table with its last slot, so its size is bounded
    /// by `total`.
    private var byClient: [UInt32: Int] = [:]

    public init(total: Int, perClient: Int) {
        self.total = total
        self.perClient = perClient
    }

    /// Takes a slot for `client`, or says why not. A client without an IPv4 address (none is
    /// expected) counts only against the total.
    public mutating func take(for client: IPv4Address?) -> Refusal? {
        guard taken < total else { return .total }
        if let client {
            let current = byClient[client.value, default: 0]
            guard current < perClient else { return .perClient }
            byClient[client.value] = current + 1
        }
        taken += 1
        return nil
    }

    /// Gives back a slot `take` gave `client`.
    public mutating func release(for client: IPv4Address?) {
        taken -= 1
        guard let client, let current = byClient[client.value] else { return }
        if current <= 1 { byClient.removeValue(forKey: client.value) } else { byClient[client.value] = current - 1 }
    }

    /// The same slots taken, under new limits (a reload): nothing is taken away, new takers
    /// wait until the counts are below the new limits.
    public func withLimits(total: Int, perClient: Int) -> ClientQuota {
        var quota = ClientQuota(total: total, perClient: perClient)
        quota.taken = taken
        quota.byClient = byClient
        return quota
    }

    /// Slots `client` holds now.
    public func taken(by client: IPv4Address) -> Int { byClient[client.value, default: 0] }

    /// Clients holding a slot now.
    public var clients: Int { byClient.count }
}
