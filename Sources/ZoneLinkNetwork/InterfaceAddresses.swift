import Foundation
import ZoneLinkCore

/// Adds the addresses ZoneLink binds (ENIs, VPC DNS, NAT) to a namespace's interface when they
/// are missing, and removes exactly those it added.
///
/// Shared addresses (wanted by another host in the same namespace too: `GatewayPlan`'s
/// `NamespaceAddresses.shared`) are taken as this process's own when found present, so the last
/// host to stop wanting one removes it; at stop (`releaseAll`) they stay, since the other host
/// may still listen on them.
///
/// It uses `ip` (iproute2) rather than netlink: this runs when a catalog changes, not per flow,
/// and `ip`'s errors are the ones operators already read. Addresses in 127.0.0.0/8 are local
/// on Linux without being added, so the host's loopback is never touched for them.
public actor InterfaceAddresses {
    /// What this process added, per namespace (nil: the host's), to remove on change and stop.
    private var added: [String?: [Owned]] = [:]

    private struct Owned {
        var address: IPv4Address
        var interface: String
        /// Another host wants it too: left in place when this process stops.
        var shared: Bool
    }

    public init() {}

    /// Makes `addresses` present on `interface` in `netns`; brings `lo` up in a namespace.
    /// - Parameter shared: those of `addresses` another host sharing the namespace wants too.
    public func ensure(_ addresses: [IPv4Address], shared: Set<IPv4Address> = [], interface: String, netns: String?) throws(NamespaceError) {
        if let netns { try ip(["-n", netns, "link", "set", "lo", "up"]) }
        let present = try presentAddresses(netns: netns)
        let loopback = IPv4Prefix("127.0.0.0/8")!
        let owned = Set((added[netns] ?? []).map(\.address))
        for address in addresses where !(netns == nil && loopback.contains(address)) {
            let isShared = shared.contains(address)
            if present.contains(address) {
                // Another host's shared address becomes ours too: whichever host stops wanting
                // it last removes it.
                if isShared && !owned.contains(address) { added[netns, default: []].append(Owned(address: address, interface: interface, shared: true)) }
                continue
            }
            do {
                try ip((netns.map { ["-n", $0] } ?? []) + ["addr", "add", "\(address)/32", "dev", interface])
            } catch {
                // Another host sharing the namespace (`host:`, docs/scale.md) may have added it
                // since we looked: then it is there, and, unless shared, that host's to remove.
                guard try presentAddresses(netns: netns).contains(address) else { throw error }
                if !isShared || owned.contains(address) { continue }
            }
            if owned.contains(address) { continue }
            added[netns, default: []].append(Owned(address: address, interface: interface, shared: isShared))
        }
        // An address that stopped being shared (or became so) is marked as the plan says now.
        added[netns] = added[netns]?.map { var entry = $0; entry.shared = shared.contains(entry.address); return entry }
    }

    /// Removes what this process added in `netns` that is not in `keep`; with `sparingShared`
    /// (undoing a change that failed), not the shared ones either: one found present may be
    /// another host's, in use.
    public func release(netns: String?, keeping keep: Set<IPv4Address> = [], sparingShared: Bool = false) {
        release(netns: netns, dropping: { !keep.contains($0.address) && !(sparingShared && $0.shared) })
    }

    /// At stop: removes every address this process added, but the shared ones (another host may
    /// still listen on them).
    public func releaseAll() {
        for netns in Array(added.keys) { release(netns: netns, dropping: { !$0.shared }) }
    }

    private func release(netns: String?, dropping drop: (Owned) -> Bool) {
        let entries = added[netns] ?? []
        for entry in entries where drop(entry) {
            // Best effort: someone may have removed it already, or the namespace is gone.
            _ = try? ip((netns.map { ["-n", $0] } ?? []) + ["addr", "del", "\(entry.address)/32", "dev", entry.interface])
        }
        added[netns] = entries.filter { !drop($0) }
    }

    private func presentAddresses(netns: String?) throws(NamespaceError) -> Set<IPv4Address> {
        let output = try ip((netns.map { ["-n", $0] } ?? []) + ["-o", "-4", "addr", "show"])
        var found = Set<IPv4Address>()
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if let i = fields.firstIndex(of: "inet"), i + 1 < fields.count,
               let address = IPv4Address(fields[i + 1].split(separator: "/")[0]) {
                found.insert(address)
            }
        }
        return found
    }

    @discardableResult
    private func ip(_ arguments: [String]) throws(NamespaceError) -> String {
        try IPCommand.run(arguments)
    }
}

/// `ip` (iproute2), run to completion: what ZoneLink changes in namespaces when a catalog
/// changes (addresses, links, routes), never per flow.
public enum IPCommand {
    /// Runs `ip arguments`; its output, or its status and output as the error.
    @discardableResult
    public static func run(_ arguments: [String]) throws(NamespaceError) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            throw .command("ip \(arguments.joined(separator: " "))", status: -1, output: "\(error) (install iproute2)")
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw .command("ip \(arguments.joined(separator: " "))", status: process.terminationStatus, output: output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return output
    }
}
