/// The DNS names ZoneLink generates (`docs/dns.md`), in presentation form and lower case:
///
/// - `epsrv-S.R.D`: a service, answered in VPCs that have an endpoint of it;
/// - `ep-E.epsrv-S.R.D`: an endpoint, every ENI, zone affinity applied;
/// - `ep-E-Z.epsrv-S.R.D`: one ENI of an endpoint, whatever its health.
///
/// One home for them, because DNS serves these names, the control API shows them and the
/// validator keeps IDs from colliding with them: if the three spelled them separately, a
/// name shown could be a name not served.
public struct EndpointNames: Hashable, Sendable {
    /// `R.D`: the region under the domain, the parent of every service name.
    public let regionName: String

    public init(region: String, domain: String) {
        self.regionName = "\(region).\(domain)".lowercased()
    }

    public init(_ catalog: Catalog) { self.init(region: catalog.region, domain: catalog.domain) }

    /// `epsrv-S.R.D`.
    public func service(_ service: String) -> String { "\(service.lowercased()).\(regionName)" }

    /// `ep-E.epsrv-S.R.D`.
    public func endpoint(_ endpoint: String, service: String) -> String {
        "\(endpoint.lowercased()).\(self.service(service))"
    }

    /// `ep-E-Z.epsrv-S.R.D`.
    public func eni(_ eni: ENIID, service: String) -> String {
        "\(Self.zonalLabel(eni)).\(self.service(service))"
    }

    /// `ep-E-Z`: the first label of an ENI's own name. An endpoint ID equal to another
    /// endpoint's zonal label would make two owners of one name, which the validator refuses.
    public static func zonalLabel(_ eni: ENIID) -> String { "\(eni.endpoint)-\(eni.zone)".lowercased() }
}

extension Endpoint {
    /// This endpoint's name under `names`.
    public func dnsName(_ names: EndpointNames) -> String { names.endpoint(id, service: service) }

    /// The name of one of this endpoint's ENIs under `names`.
    public func dnsName(of eni: ENI, _ names: EndpointNames) -> String { names.eni(id(of: eni), service: service) }
}
