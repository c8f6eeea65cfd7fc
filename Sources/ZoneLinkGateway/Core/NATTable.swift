import ZoneLinkCore

/// The gateway's NAT table: every open flow, by its consumer-side key, with the provider-side
/// address and port it was given.
///
/// Two indexes, kept consistent by changing them in exactly two places, `insert` and `detach`:
/// flows by `FlowKey`, and the key by (provider VPC, protocol, NAT endpoint), which is how
/// a reply or a listing finds the consumer side of a provider-side address. NAT ports are taken
/// from per (provider VPC, protocol, NAT address) pools in `open` and given back in `detach`.
///
/// Pure: no sockets, no clock. Every mutating call is told `now`; `expire(now:)` removes idle
/// flows and returns them so the shell can close their sockets. Not thread-safe by itself
/// (a value): the shell owns one table and serialises access to it.
public struct NATTable: Sendable {
    /// The (provider VPC, protocol, NAT endpoint) a provider-side packet arrives on.
    struct NATKey: Hashable, Sendable {
        var providerVPC: String
        var proto: TransportProtocol
        var nat: IPv4Endpoint
    }

    /// One pool of NAT ports: two flows may share a NAT port only if they differ in one of these.
    struct PoolKey: Hashable, Sendable {
        var providerVPC: String
        var proto: TransportProtocol
        var address: IPv4Address
    }

    /// Source ports handed out on each NAT address.
    public let portRange: ClosedRange<UInt16>
    public let tcpIdleTimeout: Duration
    public let udpIdleTimeout: Duration
    /// How many flows the gateway, an endpoint and a client may hold.
    public let limits: GatewayLimits
    /// New flows refused, by reason.
    public private(set) var refusals: [FlowRefusal: Int] = [:]
    /// New flows refused because every NAT port of their load balancer was in use.
    public var refusedForExhaustion: Int { refusals[.natPortsExhausted, default: 0] }

    /// One client: an address in a consumer VPC (its ports are its flows).
    struct ClientKey: Hashable, Sendable {
        var vpc: String
        var address: IPv4Address
    }

    /// One client's share of one load balancer's NAT ports of one protocol.
    struct ClientPortsKey: Hashable, Sendable {
        var client: ClientKey
        var loadBalancer: String
        var proto: TransportProtocol
    }

    private var table: [FlowKey: Flow] = [:]
    private var byNAT: [NATKey: FlowKey] = [:]
    private var pools: [PoolKey: PortPool] = [:]
    /// Per load balancer, the index of the NAT address to try first for its next new flow.
    /// (Load balancers of one VPC never share a NAT address, so this spreads each pool evenly.)
    private var rotation: [String: Int] = [:]
    private var expiry = ExpiryQueue()
    /// Open flows per endpoint, per client, and NAT ports per client and load balancer; kept
    /// with the table in `insert` and `detach`.
    private var endpointFlows: [String: Int] = [:]
    private var clientFlows: [ClientKey: Int] = [:]
    private var clientPorts: [ClientPortsKey: Int] = [:]
    private var nextSerial: UInt64 = 0

    public init(
        portRange: ClosedRange<UInt16> = 1024...65535, tcpIdleTimeout: Duration = .seconds(900),
        udpIdleTimeout: Duration = .seconds(60), limits: GatewayLimits = .unlimited
    ) {
        precondition(portRange.lowerBound > 0, "NAT port range \(portRange) includes port 0, which is not a source port")
        self.portRange = portRange
        self.tcpIdleTimeout = tcpIdleTimeout
        self.udpIdleTimeout = udpIdleTimeout
        self.limits = limits
    }

    public var count: Int { table.count }

    /// Every flow, oldest first: a snapshot for `zonelink nat list`.
    public var flows: [Flow] { table.values.sorted { $0.serial < $1.serial } }

    public func flow(_ key: FlowKey) -> Flow? { table[key] }

    /// The consumer-side key of the flow that holds a provider-side NAT endpoint.
    public func key(forNAT nat: IPv4Endpoint, providerVPC: String, protocol proto: TransportProtocol) -> FlowKey? {
        byNAT[NATKey(providerVPC: providerVPC, proto: proto, nat: nat)]
    }

    /// How many ports of one NAT address are held by flows of one protocol.
    public func portsInUse(providerVPC: String, protocol proto: TransportProtocol, nat: IPv4Address) -> Int {
        pools[PoolKey(providerVPC: providerVPC, proto: proto, address: nat)]?.inUse ?? 0
    }

    /// No flow expires before this moment (nil: no flows); a shell may arm its timer for it.
    /// It may be early, never late: activity since is not reflected.
    public var nextDeadline: Moment? { expiry.first?.deadline }

    public func idleTimeout(_ proto: TransportProtocol) -> Duration {
        proto == .tcp ? tcpIdleTimeout : udpIdleTimeout
    }

    /// The flow of `key`, touched, if there is one (a UDP client's next datagram reuses its
    /// session and NAT port; so does a retried TCP open); else a new flow to `target` from the
    /// next free NAT port on one of `natAddresses`.
    ///
    /// New flows start on the NAT address after the one the load balancer's previous new flow
    /// got, so flows spread over the addresses; a full address is skipped. When every address
    /// is full the flow is refused with `.portsExhausted` and counted in `refusedForExhaustion`.
    /// A new flow past one of `limits` is refused with `.limitReached`; every refusal is
    /// counted in `refusals`.
    public mutating func open(
        _ key: FlowKey, target: IPv4Endpoint, providerVPC: String, natAddresses: [IPv4Address],
        endpoint: String, loadBalancer: String, backend: Int?, account: String = "", now: Moment
    ) throws(NATError) -> Flow {
        if let index = table.index(forKey: key) {
            Self.touch(&table.values[index], now: now)
            return table.values[index]
        }
        do throws(NATError) {
            return try openNew(
                key, target: target, providerVPC: providerVPC, natAddresses: natAddresses, endpoint: endpoint,
                loadBalancer: loadBalancer, backend: backend, account: account, now: now)
        } catch {
            refusals[error.refusal, default: 0] += 1
            throw error
        }
    }

    /// Counts a refusal decided outside the table (say, for want of descriptors).
    public mutating func countRefusal(_ reason: FlowRefusal) {
        refusals[reason, default: 0] += 1
    }

    /// Open flows of one client (an address in a consumer VPC).
    public func flows(ofClient address: IPv4Address, vpc: String) -> Int {
        clientFlows[ClientKey(vpc: vpc, address: address), default: 0]
    }

    /// Open flows through one endpoint's ENIs.
    public func flows(ofEndpoint endpoint: String) -> Int { endpointFlows[endpoint, default: 0] }

    /// NAT ports one client holds in one load balancer's pool of one protocol.
    public func natPorts(ofClient address: IPv4Address, vpc: String, loadBalancer: String, protocol proto: TransportProtocol) -> Int {
        clientPorts[ClientPortsKey(client: ClientKey(vpc: vpc, address: address), loadBalancer: loadBalancer, proto: proto), default: 0]
    }

    /// The first limit a new flow of `key` to `endpoint` and `loadBalancer` would pass, if any.
    private func limitReached(_ key: FlowKey, endpoint: String, loadBalancer: String) -> NATError? {
        let client = ClientKey(vpc: key.vpc, address: key.client.address)
        // Built only for a refusal: formatting it costs more than the rest of an open.
        var who: String { "client \(key.client.address) of \(key.vpc)" }
        if table.count >= limits.flows {
            return .limitReached(.flows, limit: limits.flows, scope: "the gateway")
        }
        if endpointFlows[endpoint, default: 0] >= limits.flowsPerEndpoint {
            return .limitReached(.flowsPerEndpoint, limit: limits.flowsPerEndpoint, scope: "endpoint \(endpoint)")
        }
        if clientFlows[client, default: 0] >= limits.flowsPerClient {
            return .limitReached(.flowsPerClient, limit: limits.flowsPerClient, scope: who)
        }
        let ports = ClientPortsKey(client: client, loadBalancer: loadBalancer, proto: key.proto)
        if clientPorts[ports, default: 0] >= limits.natPortsPerClient {
            return .limitReached(.natPortsPerClient, limit: limits.natPortsPerClient, scope: "\(who) on load balancer \(loadBalancer)")
        }
        return nil
    }

    private mutating func openNew(
        _ key: FlowKey, target: IPv4Endpoint, providerVPC: String, natAddresses: [IPv4Address],
        endpoint: String, loadBalancer: String, backend: Int?, account: String, now: Moment
    ) throws(NATError) -> Flow {
        guard !natAddresses.isEmpty else {
            throw .noNATAddresses(providerVPC: providerVPC, loadBalancer: loadBalancer)
        }
        if let reached = limitReached(key, endpoint: endpoint, loadBalancer: loadBalancer) { throw reached }
        let start = rotation[loadBalancer, default: 0] % natAddresses.count
        for step in 0..<natAddresses.count {
            let index = (start + step) % natAddresses.count
            let address = natAddresses[index]
            let pool = PoolKey(providerVPC: providerVPC, proto: key.proto, address: address)
            guard let port = pools[pool, default: PortPool(portRange)].allocate() else { continue }
            rotation[loadBalancer] = (index + 1) % natAddresses.count
            nextSerial += 1
            let flow = Flow(
                key: key,
                binding: NATBinding(providerVPC: providerVPC, nat: IPv4Endpoint(address: address, port: port), target: target),
                endpoint: endpoint, loadBalancer: loadBalancer, backend: backend, account: account, created: now, serial: nextSerial)
            insert(flow)
            return flow
        }
        throw .portsExhausted(providerVPC: providerVPC, natAddresses: natAddresses, protocol: key.proto)
    }

    /// Counts bytes relayed and postpones the flow's expiry. False when the flow is gone
    /// (expired or removed meanwhile): the shell should then close its sockets.
    @discardableResult
    public mutating func recordTraffic(_ key: FlowKey, fromClient: Int = 0, fromTarget: Int = 0, now: Moment) -> Bool {
        guard let index = table.index(forKey: key) else { return false }
        Self.record(&table.values[index], fromClient: fromClient, fromTarget: fromTarget, now: now)
        return true
    }

    /// Records a FIN in one direction. Returns the flow, removed and its port freed, when both
    /// directions are now closed; nil while the other direction still carries data (TCP
    /// half-close) or when there is no such flow.
    @discardableResult
    public mutating func closeDirection(_ key: FlowKey, _ direction: FlowDirection, now: Moment) -> Flow? {
        guard let index = table.index(forKey: key) else { return nil }
        let closed = Self.close(&table.values[index], direction, now: now)
        return closed ? detach(key) : nil
    }

    /// Removes a flow (reset, error, shutdown) and frees its NAT port.
    @discardableResult
    public mutating func remove(_ key: FlowKey) -> Flow? { detach(key) }

    /// Removes and returns the flows idle for their protocol's whole timeout: a flow whose last
    /// activity was at `t` expires at `t + timeout`.
    ///
    /// Looks only at flows that may be due (see `ExpiryQueue`), so a call when nothing is due
    /// costs O(1) and each expired flow O(log n); calling it every second with 100k flows is
    /// cheap. Returns an empty array, without allocating, when nothing expired.
    public mutating func expire(now: Moment) -> [Flow] {
        var expired: [Flow] = []
        while let entry = expiry.first, entry.deadline <= now {
            _ = expiry.popFirst()
            guard let flow = table[entry.key], flow.serial == entry.serial else { continue }  // gone already
            let deadline = deadline(of: flow)
            if deadline <= now {
                if let removed = detach(entry.key) { expired.append(removed) }
            } else {
                expiry.push(.init(deadline: deadline, key: entry.key, serial: entry.serial))  // active meanwhile
            }
        }
        return expired
    }

    // MARK: The two places entries change

    private mutating func insert(_ flow: Flow) {
        table[flow.key] = flow
        byNAT[NATKey(providerVPC: flow.binding.providerVPC, proto: flow.key.proto, nat: flow.binding.nat)] = flow.key
        expiry.push(.init(deadline: deadline(of: flow), key: flow.key, serial: flow.serial))
        let client = ClientKey(vpc: flow.key.vpc, address: flow.key.client.address)
        endpointFlows[flow.endpoint, default: 0] += 1
        clientFlows[client, default: 0] += 1
        clientPorts[ClientPortsKey(client: client, loadBalancer: flow.loadBalancer, proto: flow.key.proto), default: 0] += 1
        // Entries of removed flows linger in the queue; drop them once they outnumber live flows.
        if expiry.count > 2 * table.count + 1024 {
            expiry.rebuild(table.values.map { .init(deadline: deadline(of: $0), key: $0.key, serial: $0.serial) })
        }
    }

    private mutating func detach(_ key: FlowKey) -> Flow? {
        guard let flow = table.removeValue(forKey: key) else { return nil }
        let nat = flow.binding.nat
        byNAT.removeValue(forKey: NATKey(providerVPC: flow.binding.providerVPC, proto: key.proto, nat: nat))
        pools[PoolKey(providerVPC: flow.binding.providerVPC, proto: key.proto, address: nat.address)]?.release(nat.port)
        let client = ClientKey(vpc: key.vpc, address: key.client.address)
        Self.decrement(&endpointFlows, flow.endpoint)
        Self.decrement(&clientFlows, client)
        Self.decrement(&clientPorts, ClientPortsKey(client: client, loadBalancer: flow.loadBalancer, proto: key.proto))
        return flow
    }

    /// Counts one fewer, forgetting keys that reach zero so departed clients take no memory.
    private static func decrement<Key: Hashable>(_ counts: inout [Key: Int], _ key: Key) {
        guard let index = counts.index(forKey: key) else { return }
        if counts.values[index] > 1 {
            counts.values[index] -= 1  // in place: one hash of the key, not two
        } else {
            counts.remove(at: index)
        }
    }

    // MARK: Changing one flow in place

    private func deadline(of flow: Flow) -> Moment {
        flow.lastActivity + idleTimeout(flow.key.proto)
    }

    /// Never moves activity back, so a queued deadline is never later than the flow's own.
    private static func touch(_ flow: inout Flow, now: Moment) {
        if now > flow.lastActivity { flow.lastActivity = now }
    }

    private static func record(_ flow: inout Flow, fromClient: Int, fromTarget: Int, now: Moment) {
        flow.bytesFromClient += fromClient
        flow.bytesFromTarget += fromTarget
        touch(&flow, now: now)
    }

    /// Returns whether both directions are now closed.
    private static func close(_ flow: inout Flow, _ direction: FlowDirection, now: Moment) -> Bool {
        switch direction {
        case .clientToTarget: flow.clientToTargetClosed = true
        case .targetToClient: flow.targetToClientClosed = true
        }
        touch(&flow, now: now)
        return flow.isClosed
    }
}
