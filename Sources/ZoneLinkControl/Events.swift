import ZoneLinkCore

/// Something operators and tenants want to hear about as it happens (`zonelink events`,
/// `GET /v1/events`, the status page): a connection changing state, an ENI or backend turning
/// healthy or unhealthy, a zonal shift, a reload, a refusal.
///
/// Each event names the accounts allowed to see it; the operator sees every event. An event
/// about an endpoint is its consumer's and its service's provider's, never a third account's.
public struct ControlEvent: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// An endpoint's connection was created, changed state, or went away.
        case connection
        /// An endpoint's zone (ENI) or a load balancer's backend turned healthy or unhealthy.
        case health
        /// A zonal shift started or ended.
        case zonalShift
        /// The config file was reloaded, or a reload was refused.
        case reload
        /// A change was refused (by the control plane, DNS or the gateway), or the gateway
        /// refused flows of an endpoint (at most one event per endpoint and reason per 10 s).
        case refusal
    }

    /// Increasing from 1 in one server's life: a client resumes after the last it saw.
    public var sequence: UInt64
    /// RFC 3339, UTC.
    public var time: String
    public var kind: Kind
    /// What it is about: an endpoint, `endpoint/zone`, `loadBalancer/backend`, a file.
    public var subject: String
    /// For people: what happened, and why when known.
    public var message: String
    /// The accounts allowed to see it besides the operator (none: the operator only).
    public var accounts: [String]

    public init(sequence: UInt64, time: String, kind: Kind, subject: String, message: String, accounts: [String]) {
        self.sequence = sequence
        self.time = time
        self.kind = kind
        self.subject = subject
        self.message = message
        self.accounts = accounts
    }

    public func isVisible(to principal: Principal) -> Bool {
        guard let account = principal.accountID else { return true }
        return accounts.contains(account)
    }
}

/// An event before the bus numbers and stamps it: what a publisher hands over.
public struct EventDraft: Sendable, Equatable {
    public var kind: ControlEvent.Kind
    public var subject: String
    public var message: String
    public var accounts: [String]

    public init(_ kind: ControlEvent.Kind, subject: String, message: String, accounts: [String]) {
        self.kind = kind
        self.subject = subject
        self.message = message
        self.accounts = accounts
    }
}

/// The bus's pure core: numbers events, and keeps the most recent `capacity` of them for
/// clients that connect, or reconnect, after they happened.
public struct EventJournal: Sendable {
    /// Events kept for late and reconnecting clients and the status page.
    public static let defaultCapacity = 1024

    public let capacity: Int
    private var ring: [ControlEvent] = []
    private var start = 0
    public private(set) var lastSequence: UInt64 = 0

    public init(capacity: Int = EventJournal.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    /// Numbers `draft`, stamps it with `time` and keeps it (the oldest goes when full).
    public mutating func append(_ draft: EventDraft, time: String) -> ControlEvent {
        lastSequence += 1
        let event = ControlEvent(
            sequence: lastSequence, time: time, kind: draft.kind, subject: draft.subject, message: draft.message, accounts: draft.accounts)
        if ring.count < capacity {
            ring.append(event)
        } else {
            ring[start] = event
            start = (start + 1) % capacity
        }
        return event
    }

    /// The kept events after `sequence` that `principal` may see, oldest first, at most `limit`
    /// (the newest ones).
    public func events(after sequence: UInt64, visibleTo principal: Principal, limit: Int = .max) -> [ControlEvent] {
        let ordered = ring[start...] + ring[..<start]
        let visible = ordered.filter { $0.sequence > sequence && $0.isVisible(to: principal) }
        return Array(visible.suffix(limit))
    }
}

extension EventDraft {
    /// Who hears about an endpoint: its consumer and its service's provider.
    static func endpointAccounts(_ endpoint: Endpoint, _ catalog: Catalog) -> [String] {
        var accounts = [endpoint.account]
        if let provider = catalog.service(endpoint.service)?.account, provider != endpoint.account { accounts.append(provider) }
        return accounts
    }

    /// Flows through an ENI of `endpoint` that the gateway refused (`count` of them since the
    /// last such event; the gateway sends at most one per endpoint and reason per 10 s). Its
    /// consumer's and its provider's, so it names neither side's addresses: only the port
    /// (`summary` is written that way too).
    public static func flowsRefused(
        endpoint id: String, proto: String, port: UInt16, summary: String, count: Int, catalog: Catalog
    ) -> EventDraft {
        let accounts = catalog.endpoint(id).map { endpointAccounts($0, catalog) } ?? []
        let flows = count == 1 ? "a \(proto) flow" : "\(count) \(proto) flows"
        return EventDraft(.refusal, subject: id, message: "\(flows) to \(id) port \(port) refused: \(summary)", accounts: accounts)
    }

    /// The connection events between two catalogs: endpoints that appeared, changed state, or
    /// went away. Each is its consumer's and its provider's.
    public static func connectionChanges(from old: Catalog, to new: Catalog) -> [EventDraft] {
        var drafts: [EventDraft] = []
        // Two catalogs of one file list their endpoints in the same order: each is compared
        // with the one at its position, and looked up by ID only where the lists part (at
        // 100,000 endpoints, a table of the old ones cost a quarter of a second per reload).
        var aligned = old.endpoints.count == new.endpoints.count
        for i in new.endpoints.indices {
            let state = new.connection(of: new.endpoints[i])
            let was: ConnectionState?
            if i < old.endpoints.count && old.endpoints[i].id == new.endpoints[i].id {
                was = old.connection(of: old.endpoints[i])
            } else {
                aligned = false
                was = old.endpoint(new.endpoints[i].id).map { old.connection(of: $0) }
            }
            guard was != state else { continue }
            let endpoint = new.endpoints[i]
            drafts.append(EventDraft(
                .connection, subject: endpoint.id,
                message: was.map { "\(endpoint.id) to \(endpoint.service): \($0.rawValue) → \(state.rawValue)" }
                    ?? "\(endpoint.id) to \(endpoint.service) created: \(state.rawValue)",
                accounts: endpointAccounts(endpoint, new)))
        }
        guard !aligned else { return drafts }
        for endpoint in old.endpoints where !new.contains(endpoint: endpoint.id) {
            drafts.append(EventDraft(
                .connection, subject: endpoint.id, message: "\(endpoint.id) to \(endpoint.service) deleted", accounts: endpointAccounts(endpoint, old)))
        }
        return drafts
    }

    /// The health events of ENIs whose health changed between two reports.
    public static func zoneHealthChanges(unhealthyBefore: Set<ENIID>, unhealthyNow: Set<ENIID>, catalog: Catalog) -> [EventDraft] {
        let changed = unhealthyBefore.symmetricDifference(unhealthyNow).sorted()
        return changed.map { eni in
            let accounts = catalog.endpoint(eni.endpoint).map { endpointAccounts($0, catalog) } ?? []
            let healthy = !unhealthyNow.contains(eni)
            return EventDraft(
                .health, subject: eni.description,
                message: "ENI \(eni) is \(healthy ? "healthy" : "unhealthy")"
                    + (healthy ? ": DNS answers it again" : ": no healthy backend behind it, DNS answers other zones"),
                accounts: accounts)
        }
    }

    /// The zonal shifts started, changed or ended between two catalogs. Each is heard by the
    /// accounts with an ENI or a service in that zone; the reason stays the operator's (it is
    /// in `zone shift list`).
    public static func zonalShiftChanges(from old: Catalog, to new: Catalog) -> [EventDraft] {
        let before = Dictionary(old.zonalShifts.map { ($0.zone, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.zonalShifts.map { ($0.zone, $0) }, uniquingKeysWith: { first, _ in first })
        func accounts(in zone: String, _ catalog: Catalog) -> [String] {
            var accounts = catalog.endpoints.filter { $0.enis.contains { $0.zone == zone } }.map(\.account)
            accounts += catalog.services.filter { $0.zones.contains(zone) }.map(\.account)
            return Array(Set(accounts)).sorted()
        }
        var drafts: [EventDraft] = []
        for shift in new.zonalShifts where before[shift.zone] != shift {
            let until = shift.expiresAt.map { " until \(RFC3339.format(nanoseconds: $0 * 1_000_000_000))" } ?? " until ended"
            let verb = before[shift.zone] == nil ? "shifted away" : "shift changed"
            drafts.append(EventDraft(
                .zonalShift, subject: shift.zone,
                message: "zone \(shift.zone) \(verb)\(until): DNS answers other zones, no new flow reaches its backends",
                accounts: accounts(in: shift.zone, new)))
        }
        for shift in old.zonalShifts where after[shift.zone] == nil {
            drafts.append(EventDraft(
                .zonalShift, subject: shift.zone, message: "zone \(shift.zone) back in service: its zonal shift ended",
                accounts: accounts(in: shift.zone, new)))
        }
        return drafts
    }
}
