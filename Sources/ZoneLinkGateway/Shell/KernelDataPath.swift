import CNFTables
import Foundation
import Logging
import ZoneLinkCore
import ZoneLinkNetwork

/// The shell of the kernel data path (`dataPlane: kernel`): ZoneLink's gateway namespace, a
/// veth pair to each VPC namespace a kernel service uses, the routes and rules that steer flows
/// through it, and the nftables table `KernelNAT` writes, applied through libnftables.
///
/// Everything runs when the catalog or a backend's health changes, never per flow. Links and
/// load balancer slots keep their numbers while they are wanted (open flows' conntrack marks
/// name them). On stop the table, the links and the routes go; the namespace is deleted only
/// when ZoneLink created it, so an operator's own namespace keeps its other tables.
public actor KernelDataPath {
    private let logger: Logger
    private var gatewayName: String?
    private var gateway: NetworkNamespace?
    private var createdNamespace = false
    /// Links by VPC ID; slots by load balancer ID.
    private var links: [String: KernelNAT.Link] = [:]
    private var slots: [String: Int] = [:]
    /// The `ip rule` specifications in force in the gateway namespace.
    private var rules: Set<[String]> = []
    /// Routes added in VPC namespaces: (netns, destination /32).
    private var routes: Set<RouteKey> = []
    /// What the last table was made of, for health changes.
    private var input: KernelNAT.Input?
    /// The ports that table serves, for reading conntrack's entries as flows.
    private var served = KernelFlows.Served.none

    private struct RouteKey: Hashable {
        var netns: String
        var destination: IPv4Address
    }

    public init(logger: Logger) {
        self.logger = logger
    }

    /// Whether anything of the kernel path is set up.
    public var isActive: Bool { gateway != nil }

    /// Moves the kernel path to `plan`: creates what is missing, removes what is no longer
    /// wanted, and replaces the table in one transaction with `targets` (by upstream key).
    /// Afterwards the conntrack entries of ports the new table no longer serves (an endpoint
    /// rejected or deleted, a zone removed) are deleted, so their flows stop.
    public func apply(
        _ plan: GatewayPlan, targets: [String: [KernelNAT.Target]], natPorts: ClosedRange<UInt16>,
        idleTimeouts: KernelFlows.IdleTimeouts = KernelFlows.IdleTimeouts(tcp: .seconds(900), udp: .seconds(60))
    ) async throws {
        let kernelUpstreams = plan.upstreams.filter(\.kernel)
        guard !plan.kernelENIs.isEmpty || !kernelUpstreams.isEmpty else {
            await stop()
            return
        }
        if let name = gatewayName, name != plan.kernelNamespace { await stop() }
        try await openGateway(plan.kernelNamespace)
        guard let name = gatewayName else { return }

        // Links: one per VPC namespace a kernel service uses, consumer or provider.
        var netnsByVPC: [String: String] = [:]
        for eni in plan.kernelENIs { netnsByVPC[eni.vpc] = eni.netns }
        for upstream in kernelUpstreams {
            if let netns = upstream.providerNetns { netnsByVPC[upstream.providerVPC] = netns }
        }
        let numbers = try KernelNAT.assign(netnsByVPC.keys.sorted(), previous: links.mapValues(\.index), limit: KernelNAT.maxLinks)
        let wanted = Dictionary(uniqueKeysWithValues: numbers.map { ($0.key, KernelNAT.Link(vpc: $0.key, netns: netnsByVPC[$0.key]!, index: $0.value)) })
        for (vpc, link) in links where wanted[vpc] != link {
            try? IPCommand.run(["-n", name, "link", "del", link.gatewayInterface])
            routes = routes.filter { $0.netns != link.netns }
            links[vpc] = nil
        }
        for (vpc, link) in wanted.sorted(by: { $0.value.index < $1.value.index }) where links[vpc] == nil {
            try makeLink(link, gateway: name)
            links[vpc] = link
        }

        // Load balancer slots, and the rules that route by mark.
        slots = try KernelNAT.assign(
            Array(Set(kernelUpstreams.map(\.loadBalancer))).sorted(), previous: slots, limit: KernelNAT.maxBalancers)
        var wantedRules: Set<[String]> = []
        for link in links.values {
            wantedRules.insert([
                "fwmark", "\(link.index)/\(KernelNAT.hex(KernelNAT.consumerMask))", "lookup", "\(link.routeTable)", "priority", "\(KernelNAT.linkRulePriority)",
            ])
        }
        for (balancer, slot) in slots {
            guard let vpc = kernelUpstreams.first(where: { $0.loadBalancer == balancer })?.providerVPC, let link = links[vpc] else { continue }
            wantedRules.insert([
                "fwmark", "\(KernelNAT.hex(UInt32(slot) << KernelNAT.balancerShift))/\(KernelNAT.hex(KernelNAT.balancerMask))",
                "lookup", "\(link.routeTable)", "priority", "\(KernelNAT.balancerRulePriority)",
            ])
        }
        for rule in rules.subtracting(wantedRules) { try? IPCommand.run(["-n", name, "rule", "del"] + rule) }
        for rule in wantedRules.subtracting(rules) { try IPCommand.run(["-n", name, "rule", "add"] + rule) }
        rules = wantedRules

        // Routes in the VPCs: ENI addresses and NAT addresses lead to the gateway namespace.
        var wantedRoutes: Set<RouteKey> = []
        for eni in plan.kernelENIs where links[eni.vpc] != nil { wantedRoutes.insert(RouteKey(netns: eni.netns, destination: eni.address)) }
        for upstream in kernelUpstreams {
            guard let netns = upstream.providerNetns, links[upstream.providerVPC] != nil else { continue }
            for nat in upstream.natAddresses { wantedRoutes.insert(RouteKey(netns: netns, destination: nat)) }
        }
        for route in routes.subtracting(wantedRoutes) {
            try? IPCommand.run(["-n", route.netns, "route", "del", "\(route.destination)/32", "dev", KernelNAT.vpcInterface])
        }
        for route in wantedRoutes.subtracting(routes) {
            guard let link = links.values.first(where: { $0.netns == route.netns }) else { continue }
            try IPCommand.run([
                "-n", route.netns, "route", "replace", "\(route.destination)/32", "via", "\(link.gatewayAddress)", "dev", KernelNAT.vpcInterface,
            ])
        }
        routes = wantedRoutes

        let input = KernelNAT.Input(
            ports: plan.kernelPorts, upstreams: kernelUpstreams, targets: targets, links: links, balancerSlots: slots, natPorts: natPorts,
            idleTimeouts: idleTimeouts)
        try await run(KernelNAT.replacement(input, previous: self.input))
        self.input = input
        served = KernelFlows.Served(ports: input.ports, upstreams: input.upstreams, links: links)
        await deleteStaleFlows()
    }

    /// Deletes the conntrack entries of ZoneLink's flows whose port the table in force no
    /// longer serves. The table refuses their new packets already; deleting the entries stops
    /// the open flows too (their next packet is not established, and is refused).
    private func deleteStaleFlows() async {
        guard let gateway, let name = gatewayName else { return }
        let served = served
        do {
            let deleted = try await gateway.run { try KernelConntrack.delete { KernelFlows.isStale($0, served: served) } }
            if deleted > 0 { logger.info("kernel data path: flows of ports no longer served deleted", metadata: ["netns": "\(name)", "flows": "\(deleted)"]) }
        } catch {
            logger.error("kernel data path: the flows of ports no longer served could not be deleted; they stop at their idle timeout", metadata: [
                "error": "\(error)",
            ])
        }
    }

    /// ZoneLink's kernel flows (conntrack entries of served ports), at most `limit`: one dump
    /// of the gateway namespace's conntrack table. Empty when the kernel path is not set up.
    public func flows(limit: Int) async throws -> [KernelFlows.Row] {
        guard let gateway else { return [] }
        let served = served
        let entries = try await gateway.run {
            try KernelConntrack.entries(limit: limit) { $0.isZoneLinks && !KernelFlows.isStale($0, served: served) }
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return KernelFlows.rows(entries, served: served, nowNanoseconds: UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec))
    }

    /// A health transition: the same table with the targets probes allow now.
    public func update(targets: [String: [KernelNAT.Target]]) async {
        guard let previous = input else { return }
        var input = previous
        input.targets = targets
        do {
            try await run(KernelNAT.replacement(input, previous: previous))
            self.input = input
        } catch {
            logger.error("kernel data path: the table could not be updated after a health change; the previous one stays", metadata: [
                "error": "\(error)",
            ])
        }
    }

    /// Removes ZoneLink's table, links, rules and routes, and the namespace if ZoneLink made it.
    public func stop() async {
        guard let name = gatewayName else { return }
        if gateway != nil { try? await run(KernelNAT.removal) }
        for route in routes {
            try? IPCommand.run(["-n", route.netns, "route", "del", "\(route.destination)/32", "dev", KernelNAT.vpcInterface])
        }
        for rule in rules { try? IPCommand.run(["-n", name, "rule", "del"] + rule) }
        // An operator's namespace gets its `local` rule back where the kernel puts it.
        if !createdNamespace { try? moveLocalRule(in: name, to: 0, from: KernelNAT.localRulePriority) }
        // Deleting one end of a veth pair deletes the other, in the VPC's namespace.
        for link in links.values { try? IPCommand.run(["-n", name, "link", "del", link.gatewayInterface]) }
        await gateway?.shutdown()
        if createdNamespace { try? IPCommand.run(["netns", "del", name]) }
        logger.info("kernel data path stopped", metadata: ["netns": "\(name)", "links": "\(links.count)"])
        routes = []
        rules = []
        served = .none
        links = [:]
        slots = [:]
        input = nil
        gateway = nil
        gatewayName = nil
        createdNamespace = false
    }

    private func openGateway(_ name: String) async throws {
        guard gateway == nil else { return }
        if !FileManager.default.fileExists(atPath: "/var/run/netns/\(name)") {
            try IPCommand.run(["netns", "add", name])
            createdNamespace = true
        }
        gatewayName = name
        try IPCommand.run(["-n", name, "link", "set", "lo", "up"])
        gateway = try await NetworkNamespace.named(name)
        // Forwarding on; reverse-path filtering off (replies of two VPCs with the same client
        // address leave by different links, chosen by mark, which a strict check would
        // refuse); resets and ICMP errors the table sends carry the refused packet's mark, so
        // they are routed back to the link it came from. Conntrack accounting and timestamps
        // on, so kernel flows show bytes and ages in `nat list` like relayed ones (without
        // them the flows are still listed, with 0 bytes and no age).
        let missing = try await gateway!.run { () -> [String] in
            var missing: [String] = []
            for key in ["net/netfilter/nf_conntrack_acct", "net/netfilter/nf_conntrack_timestamp"] {
                let fd = open("/proc/sys/\(key)", O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { missing.append(key); continue }
                if write(fd, "1", 1) != 1 { missing.append(key) }
                close(fd)
            }
            return missing
        }
        if !missing.isEmpty {
            logger.warning("kernel data path: conntrack accounting or timestamps cannot be turned on; kernel flows show no bytes or ages", metadata: [
                "netns": "\(name)", "sysctl": "\(missing.joined(separator: ", "))",
            ])
        }
        try await gateway!.run {
            for (key, value) in [
                ("net/ipv4/ip_forward", "1"), ("net/ipv4/conf/all/rp_filter", "0"), ("net/ipv4/conf/default/rp_filter", "0"),
                ("net/ipv4/fwmark_reflect", "1"),
            ] {
                let fd = open("/proc/sys/\(key)", O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { throw KernelDataPathError.sysctl(key: key, netns: name) }
                defer { close(fd) }
                guard write(fd, value, value.utf8.count) == value.utf8.count else { throw KernelDataPathError.sysctl(key: key, netns: name) }
            }
        }
        // What a ZoneLink that was killed left behind: its links (their VPC ends go with them)
        // and its rules. Its table is replaced whole by the first transaction.
        let present = (try? IPCommand.run(["-n", name, "-o", "link", "show"])) ?? ""
        for line in present.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { continue }
            let interface = fields[1].split(separator: "@").first.map(String.init) ?? ""
            if interface.hasPrefix("zlg") { try? IPCommand.run(["-n", name, "link", "del", interface]) }
        }
        for priority in [KernelNAT.linkRulePriority, KernelNAT.balancerRulePriority] {
            for _ in 0..<(KernelNAT.maxLinks + 1) {
                guard (try? IPCommand.run(["-n", name, "rule", "del", "priority", "\(priority)"])) != nil else { break }
            }
        }
        try moveLocalRule(in: name, to: KernelNAT.localRulePriority, from: 0)
        logger.info("kernel data path: gateway namespace", metadata: ["netns": "\(name)", "created": "\(createdNamespace)"])
    }

    /// Moves the gateway namespace's `ip rule … lookup local` from priority `old` to `new`
    /// (`KernelNAT.localRulePriority`): added at the new place first, so that the namespace is
    /// never without it. Repeating it changes nothing.
    private func moveLocalRule(in name: String, to new: Int, from old: Int) throws {
        let present = (try? IPCommand.run(["-n", name, "rule", "show", "priority", "\(new)"])) ?? ""
        if !present.contains("lookup local") { try IPCommand.run(["-n", name, "rule", "add", "priority", "\(new)", "lookup", "local"]) }
        while ((try? IPCommand.run(["-n", name, "rule", "show", "priority", "\(old)"])) ?? "").contains("lookup local") {
            try IPCommand.run(["-n", name, "rule", "del", "priority", "\(old)", "lookup", "local"])
        }
    }

    private func makeLink(_ link: KernelNAT.Link, gateway name: String) throws {
        // A VPC end left by a killed ZoneLink whose gateway namespace was deleted meanwhile.
        try? IPCommand.run(["-n", link.netns, "link", "del", KernelNAT.vpcInterface])
        try IPCommand.run([
            "link", "add", link.gatewayInterface, "netns", name, "type", "veth", "peer", "name", KernelNAT.vpcInterface, "netns", link.netns,
        ])
        try IPCommand.run(["-n", name, "addr", "add", "\(link.gatewayAddress)/30", "dev", link.gatewayInterface])
        try IPCommand.run(["-n", link.netns, "addr", "add", "\(link.vpcAddress)/30", "dev", KernelNAT.vpcInterface])
        try IPCommand.run(["-n", name, "link", "set", link.gatewayInterface, "up"])
        try IPCommand.run(["-n", link.netns, "link", "set", KernelNAT.vpcInterface, "up"])
        try IPCommand.run(["-n", link.netns, "link", "set", "lo", "up"])
        try IPCommand.run([
            "-n", name, "route", "replace", "default", "via", "\(link.vpcAddress)", "dev", link.gatewayInterface, "table", "\(link.routeTable)",
        ])
        logger.info("kernel data path: link", metadata: [
            "vpc": "\(link.vpc)", "netns": "\(link.netns)", "interface": "\(link.gatewayInterface)", "address": "\(link.gatewayAddress)",
        ])
    }

    /// Runs one nftables transaction in the gateway namespace (libnftables' netlink socket is
    /// opened on the namespace's thread, so it talks to that namespace's netfilter).
    private func run(_ commands: String) async throws {
        guard let gateway, let name = gatewayName else { return }
        try await gateway.run {
            guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else { throw KernelDataPathError.nftables(netns: name, message: "nft_ctx_new failed") }
            defer { nft_ctx_free(context) }
            _ = nft_ctx_buffer_output(context)
            _ = nft_ctx_buffer_error(context)
            guard nft_run_cmd_from_buffer(context, commands) == 0 else {
                let message = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? "no message"
                throw KernelDataPathError.nftables(netns: name, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
    }
}

public enum KernelDataPathError: Error, CustomStringConvertible {
    case nftables(netns: String, message: String)
    case sysctl(key: String, netns: String)

    public var description: String {
        switch self {
        case .nftables(let netns, let message):
            "the kernel data path's nftables table was refused in netns \(netns): \(message) (is nf_tables in the kernel and libnftables installed?)"
        case .sysctl(let key, let netns):
            "cannot set \(key) in netns \(netns) (run zonelink as root)"
        }
    }
}
