import ZoneLinkAPI
import ZoneLinkGateway

extension Components.Schemas.NATRow {
    /// A flow of the gateway's NAT table as `GET /v1/nat` and `zonelink nat list --json` show it.
    init(_ flow: Flow, age: Duration) {
        self.init(
            _protocol: flow.key.proto == .tcp ? .tcp : .udp, vpc: flow.key.vpc, client: flow.key.client.description,
            eni: flow.key.eni.description, nat: flow.binding.nat.description, target: flow.binding.target.description,
            endpoint: flow.endpoint, ageSeconds: Self.seconds(age),
            bytesFromClient: flow.bytesFromClient, bytesFromTarget: flow.bytesFromTarget)
    }

    /// A kernel flow (a conntrack entry of the kernel data path) in the same shape: the same
    /// table, whichever data plane carries the flow. An entry the kernel recorded no start for
    /// shows age 0.
    init(_ flow: KernelFlows.Row) {
        self.init(
            _protocol: flow.key.proto == .tcp ? .tcp : .udp, vpc: flow.key.vpc, client: flow.key.client.description,
            eni: flow.key.eni.description, nat: flow.nat.description, target: flow.target.description,
            endpoint: flow.endpoint, ageSeconds: flow.age.map(Self.seconds) ?? 0,
            bytesFromClient: Int(clamping: flow.bytesFromClient), bytesFromTarget: Int(clamping: flow.bytesFromTarget))
    }

    private static func seconds(_ age: Duration) -> Double {
        Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18
    }
}
