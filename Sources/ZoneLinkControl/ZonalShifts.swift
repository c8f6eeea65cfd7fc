import ZoneLinkCore

/// Starts (or changes) the shift of one zone: `zonelink zone shift start`.
public struct StartZonalShiftRequest: Hashable, Sendable {
    public var zone: String
    /// `DurationText` (`30m`, `2h`); nil: until ended.
    public var expiresIn: String?
    public var reason: String?
    /// `DurationText`: close the zone's open flows this long from now; nil: let them end.
    public var drainAfter: String?
    /// Shift even when a service would be left without a healthy zone.
    public var force: Bool

    public init(zone: String, expiresIn: String? = nil, reason: String? = nil, drainAfter: String? = nil, force: Bool = false) {
        self.zone = zone
        self.expiresIn = expiresIn
        self.reason = reason
        self.drainAfter = drainAfter
        self.force = force
    }
}

/// What the gateway's health checks say now: the backends that pass, per load balancer
/// listener. The control plane reads it to tell which zones of a service can take flows.
public struct ObservedHealth: Hashable, Sendable {
    public struct Backend: Hashable, Sendable {
        public var loadBalancer: String
        public var listener: Int
        public var address: IPv4Address

        public init(loadBalancer: String, listener: Int, address: IPv4Address) {
            self.loadBalancer = loadBalancer
            self.listener = listener
            self.address = address
        }
    }

    public var healthyBackends: Set<Backend>

    public init(healthyBackends: Set<Backend> = []) { self.healthyBackends = healthyBackends }
}

/// Zonal shifts' limits (documented in docs/cli.md and the API).
public enum ZonalShiftLimits {
    /// The longest `expiresIn`: a shift nobody ends must not outlive a week.
    public static let maxExpiry: Duration = .seconds(7 * 24 * 3600)
    /// The longest `drainAfter`.
    public static let maxDrain: Duration = .seconds(24 * 3600)
    /// `reason`, in UTF-8 bytes.
    public static let maxReasonBytes = 256
}

extension ControlPlane {
    /// Every zonal shift; operator only (a shift is the region's, not a tenant's).
    public func zonalShifts(by principal: Principal) throws(ControlError) -> [ZonalShift] {
        try requireOperator(principal, to: "list zonal shifts")
        return catalog.zonalShifts
    }

    /// Shifts `request.zone` away from `now` on, or changes the expiry, reason and drain of the
    /// zone's shift (it keeps its start). Refused when a service that has a healthy zone now
    /// would have none left, unless `force`.
    /// - Returns: the shift, and whether it replaced one.
    public func startZonalShift(
        _ request: StartZonalShiftRequest, by principal: Principal, now: Int64, health: ObservedHealth
    ) throws(ControlError) -> Applied<(shift: ZonalShift, replaced: Bool)> {
        try requireOperator(principal, to: "shift a zone away")
        var issues: [ConfigIssue] = []
        let known = catalog.knownZones
        if !known.contains(request.zone) {
            issues.append(ConfigIssue(
                "zone", request.zone.isEmpty ? "is empty" : "unknown zone '\(request.zone)'", hint: choices(known.sorted(), "zone")))
        }
        let expiresIn = Self.seconds(request.expiresIn, at: "expiresIn", max: ZonalShiftLimits.maxExpiry, issues: &issues)
        let drainAfter = Self.seconds(request.drainAfter, at: "drainAfter", max: ZonalShiftLimits.maxDrain, issues: &issues)
        let reason = request.reason ?? ""
        if reason.utf8.count > ZonalShiftLimits.maxReasonBytes {
            issues.append(ConfigIssue("reason", "is \(reason.utf8.count) bytes long", hint: "keep it to \(ZonalShiftLimits.maxReasonBytes) bytes"))
        } else if reason.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            issues.append(ConfigIssue("reason", "holds a control character", hint: "write one line of printable text"))
        }
        guard issues.isEmpty else { throw .invalid(issues: issues) }

        let existing = state.zonalShift(request.zone)
        if !request.force && existing == nil {
            let dark = ShiftImpact.servicesGoingDark(
                catalog, shifting: request.zone, alreadyShifted: catalog.shiftedZones, health: health)
            if !dark.isEmpty {
                throw .conflict("shifting \(request.zone) away would leave no healthy zone for "
                    + dark.joined(separator: "; ") + ": their flows and answers would go dark; pass force to shift anyway")
            }
        }
        let shift = ZonalShift(
            zone: request.zone, reason: reason, startedAt: existing?.startedAt ?? now,
            expiresAt: expiresIn.map { now + $0 }, drainAt: drainAfter.map { now + $0 })
        let changes: [StateChange] = [.putZonalShift(shift)]
        let next = try applying(changes)
        return Applied(plane: next, changes: changes, value: (shift, existing != nil))
    }

    /// Ends the shift of `zone`: DNS and new flows return to it at once.
    public func endZonalShift(_ zone: String, by principal: Principal) throws(ControlError) -> Applied<ZonalShift> {
        try requireOperator(principal, to: "end a zonal shift")
        guard let shift = state.zonalShift(zone) else {
            let shifted = state.zonalShifts.map(\.zone)
            throw .notFound("no zonal shift of '\(zone)'" + (shifted.isEmpty ? "; no zone is shifted away" : "; shifted: \(shifted.joined(separator: ", "))"))
        }
        let changes: [StateChange] = [.endZonalShift(zone: zone)]
        return Applied(plane: try applying(changes), changes: changes, value: shift)
    }

    /// Ends every shift whose expiry `now` has reached (the process's own change, no principal).
    /// No change when none has.
    public func endingExpiredShifts(now: Int64) throws(ControlError) -> Applied<[ZonalShift]> {
        let expired = expiredShifts(at: now)
        guard !expired.isEmpty else { return Applied(plane: self, changes: [], value: []) }
        let changes = expired.map { StateChange.endZonalShift(zone: $0.zone) }
        return Applied(plane: try applying(changes), changes: changes, value: expired)
    }

    /// The shifts whose expiry has passed at `now` (seconds since the epoch), still in the state.
    public func expiredShifts(at now: Int64) -> [ZonalShift] {
        state.zonalShifts.filter { $0.hasExpired(at: now) }
    }

    private func requireOperator(_ principal: Principal, to action: String) throws(ControlError) {
        guard principal.isOperator else {
            throw .forbidden(rule: "\(principal) may not \(action): a zonal shift applies to every service and VPC of the region, so only the operator may")
        }
    }

    /// Whole seconds of an optional `DurationText` field, at least 1 s and at most `max`.
    private static func seconds(_ text: String?, at path: String, max: Duration, issues: inout [ConfigIssue]) -> Int64? {
        guard let text else { return nil }
        guard let duration = DurationText.parse(text) else {
            issues.append(ConfigIssue(path, "'\(text)' is not a duration", hint: DurationText.hint))
            return nil
        }
        guard duration >= .seconds(1), duration <= max else {
            issues.append(ConfigIssue(path, "'\(text)' is out of range", hint: "give 1s to \(max.components.seconds / 3600)h"))
            return nil
        }
        return duration.components.seconds
    }
}

/// What a zonal shift does to the services: which of their zones can still take flows. Pure:
/// the catalog, the shifted zones and the observed health go in.
public enum ShiftImpact {
    /// The zones of `service` that serve with `shifted` away: the zone itself is not shifted,
    /// and its load balancer has somewhere outside the shifted zones to send a flow (an external
    /// load balancer whose address is not in one; else a healthy backend with a weight).
    public static func servingZones(
        of service: EndpointService, in catalog: Catalog, shifted: Set<String>, health: ObservedHealth
    ) -> [String] {
        service.resources.compactMap { resource in
            guard !shifted.contains(resource.zone), let balancer = catalog.loadBalancer(resource.loadBalancer) else { return nil }
            if let external = catalog.externalZone(of: balancer) {
                return shifted.contains(external) ? nil : resource.zone
            }
            func outside(_ address: IPv4Address) -> Bool {
                catalog.zone(of: address, inVPC: balancer.vpc).map { !shifted.contains($0) } ?? true
            }
            let serves = balancer.listeners.indices.contains { index in
                balancer.listeners[index].backends.contains { backend in
                    backend.weight > 0 && outside(backend.address)
                        && health.healthyBackends.contains(.init(loadBalancer: balancer.id, listener: index, address: backend.address))
                }
            }
            return serves ? resource.zone : nil
        }
    }

    /// The services (with a sentence each) that serve from some zone now and from none once
    /// `zone` is shifted away too.
    public static func servicesGoingDark(
        _ catalog: Catalog, shifting zone: String, alreadyShifted: Set<String>, health: ObservedHealth
    ) -> [String] {
        let after = alreadyShifted.union([zone])
        return catalog.services.compactMap { service in
            let now = servingZones(of: service, in: catalog, shifted: alreadyShifted, health: health)
            guard !now.isEmpty, servingZones(of: service, in: catalog, shifted: after, health: health).isEmpty else { return nil }
            return "\(service.id) (serving now from \(now.joined(separator: ", ")))"
        }
    }
}
