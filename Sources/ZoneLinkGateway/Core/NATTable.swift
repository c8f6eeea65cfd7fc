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
    /// New flows refused because every NAT port of their load balancer was in use.
    public private(set) var refusedForExhaustion = 0

    private var table: [FlowKey: Flow] = [:]
    private var byNAT: [NATKey: FlowKey] = [:]
    private var pools: [PoolKey: PortPool] = [:]
    /// Per load balancer, the index of the NAT address to try first for its next new flow.
    /// (Load balancers of one VPC never share a NAT address, so this spreads each pool evenly.)
    private var rotation: [String: Int] = [:]
    private var expiry = ExpiryQueue()
    private var nextSerial: UInt64 = 0

    public init(
        portRange: ClosedRange<UInt16> = 1024...65535, tcpIdleTimeout: Duration = .seconds(900),
        udpIdleTimeout: Duration = .seconds(60)
    ) {
        precondition(portRange.lowerBound > 0, "NAT port range \(portRange) includes port 0, which is not a source port")
        self.portRange = portRange
        self.tcpIdleTimeout = tcpIdleTimeout
        self.udpIdleTimeout = udpIdleTimeout
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
    public mutating func open(
        _ key: FlowKey, target: IPv4Endpoint, providerVPC: String, natAddresses: [IPv4Address],
        endpoint: String, loadBalancer: String, backend: Int?, now: Moment
    ) throws(NATError) -> Flow {
        if let index = table.index(forKey: key) {
            Self.touch(&table.values[index], now: now)
            return table.values[index]
        }
        guard !natAddresses.isEmpty else {
            throw .noNATAddresses(providerVPC: providerVPC, loadBalancer: loadBalancer)
        }
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
                endpoint: endpoint, loadBalancer: loadBalancer, backend: backend, created: now, serial: nextSerial)
            insert(flow)
            return flow
        }
        refusedForExhaustion += 1
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
        return flow
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
