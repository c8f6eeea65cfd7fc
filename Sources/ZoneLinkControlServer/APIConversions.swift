import Foundation
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore

// The one place where the control plane's own types meet the API's generated ones: requests
// in (generated → control plane), views out (control plane → generated). The control plane
// stays free of HTTP; the wire follows docs/openapi.yaml.

// MARK: Requests in

extension CreateServiceRequest {
    init(_ body: Components.Schemas.CreateServiceRequest) {
        self.init(
            id: body.id, account: body.account,
            resources: body.resources.map { ServiceResourceSpec(zone: $0.zone, loadBalancer: $0.loadBalancer) },
            autoAcceptConnections: body.autoAcceptConnections, zoneAffinity: body.zoneAffinity,
            privateDomain: body.privateDomain, proxyProtocol: body.proxyProtocol, connectionBandwidth: body.connectionBandwidth,
            dataPlane: body.dataPlane.map(ServiceDataPlane.init))
    }
}

extension CreateEndpointRequest {
    init(_ body: Components.Schemas.CreateEndpointRequest) {
        self.init(
            id: body.id, account: body.account, service: body.service, vpc: body.vpc, securityGroups: body.securityGroups,
            zones: body.zones.map { ZoneChoice(zone: $0.zone, vswitch: $0.vswitch, address: $0.address) })
    }
}

extension StartZonalShiftRequest {
    init(_ body: Components.Schemas.StartZonalShiftRequest) {
        self.init(zone: body.zone, expiresIn: body.expiresIn, reason: body.reason, drainAfter: body.drainAfter, force: body.force ?? false)
    }
}

// MARK: Views out

extension Components.Schemas.Service {
    init(_ view: ServiceView) {
        self.init(
            id: view.id, account: view.account, zones: view.zones, autoAcceptConnections: view.autoAcceptConnections,
            zoneAffinity: view.zoneAffinity, privateDomain: view.privateDomain, dnsName: view.dnsName,
            origin: Components.Schemas.Origin(view.origin),
            resources: view.resources?.map { Components.Schemas.ServiceResource(zone: $0.zone, loadBalancer: $0.loadBalancer) },
            whitelist: view.whitelist?.map(Components.Schemas.WhitelistEntry.init), proxyProtocol: view.proxyProtocol,
            connectionBandwidth: view.connectionBandwidth, dataPlane: view.dataPlane.map(Components.Schemas.DataPlane.init))
    }
}

extension Components.Schemas.WhitelistEntry {
    init(_ entry: WhitelistEntry) {
        self.init(service: entry.service, account: entry.account, origin: Components.Schemas.Origin(entry.origin))
    }
}

extension Components.Schemas.Endpoint {
    init(_ view: EndpointView) {
        self.init(
            id: view.id, service: view.service, account: view.account, zones: view.zones,
            connection: Components.Schemas.ConnectionState(view.connection), origin: Components.Schemas.Origin(view.origin),
            placement: view.placement.map { placement in
                Components.Schemas.Placement(
                    vpc: placement.vpc, securityGroups: placement.securityGroups, dnsName: placement.dnsName,
                    enis: placement.enis.map { Components.Schemas.Eni(zone: $0.zone, vswitch: $0.vswitch, address: $0.address, dnsName: $0.dnsName) })
            })
    }
}

extension Components.Schemas.DataPlane {
    init(_ plane: ServiceDataPlane) {
        switch plane {
        case .relay: self = .relay
        case .kernel: self = .kernel
        }
    }
}

extension ServiceDataPlane {
    init(_ plane: Components.Schemas.DataPlane) {
        switch plane {
        case .relay: self = .relay
        case .kernel: self = .kernel
        }
    }
}

extension Components.Schemas.Origin {
    init(_ origin: Origin) {
        switch origin {
        case .file: self = .file
        case .api: self = .api
        }
    }
}

extension Components.Schemas.ConnectionState {
    init(_ state: ConnectionState) {
        switch state {
        case .disconnected: self = .disconnected
        case .connected: self = .connected
        case .rejected: self = .rejected
        }
    }
}

extension Components.Schemas.ZoneHealth {
    /// The row of one ENI, living where `placement` says.
    public init(_ eni: ENIID, healthy: Bool, placement: ServingPlacement) {
        self.init(
            endpoint: eni.endpoint, zone: eni.zone, healthy: healthy, shiftedAway: placement.state == .shiftedAway,
            state: .init(placement.state), servingZone: placement.servingZone)
    }
}

extension Components.Schemas.LoadBalancerPlacement {
    init(_ balancer: LoadBalancer, _ placement: ServingPlacement) {
        self.init(
            loadBalancer: balancer.id, zone: balancer.zone, backupZone: balancer.backupZone, state: .init(placement.state),
            servingZone: placement.servingZone)
    }
}

extension Components.Schemas.PlacementState {
    init(_ state: ServingPlacement.State) {
        switch state {
        case .home: self = .home
        case .shiftedAway: self = .shiftedAway
        case .failedOver: self = .failedOver
        }
    }
}

extension Components.Schemas.ZonalShift {
    /// The shift as the API shows it; `withReason: false` for an account (the reason is the
    /// operator's note).
    init(_ shift: ZonalShift, withReason: Bool = true) {
        func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }
        self.init(
            zone: shift.zone, reason: withReason ? shift.reason : nil, startedAt: date(shift.startedAt),
            expiresAt: shift.expiresAt.map(date), drainAt: shift.drainAt.map(date))
    }
}

extension Components.Schemas.Event {
    init(_ event: ControlEvent) {
        self.init(
            sequence: Int64(clamping: event.sequence), time: event.time, kind: KindPayload(rawValue: event.kind.rawValue) ?? .refusal,
            subject: event.subject, message: event.message, accounts: event.accounts)
    }
}
