import ZoneLinkAPI
import ZoneLinkGateway

extension Components.Schemas.NATRow {
    /// A flow of the gateway's NAT table as `GET /v1/nat` and `zonelink nat list --json` show it.
    init(_ flow: Flow, age: Duration) {
        self.init(
            _protocol: flow.key.proto == .tcp ? .tcp : .udp, vpc: flow.key.vpc, client: flow.key.client.description,
            eni: flow.key.eni.description, nat: flow.binding.nat.description, target: flow.binding.target.description,
            endpoint: flow.endpoint, ageSeconds: Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18,
            bytesFromClient: flow.bytesFromClient, bytesFromTarget: flow.bytesFromTarget)
    }
}
