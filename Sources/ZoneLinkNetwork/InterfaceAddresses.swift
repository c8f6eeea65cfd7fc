import Foundation
import ZoneLinkCore

/// Adds the addresses ZoneLink binds (ENIs, VPC DNS, NAT) to a namespace's interface when they
/// are missing, and removes exactly those it added.
///
/// It uses `ip` (iproute2) rather than netlink: this runs when a catalog changes, not per flow,
/// and `ip`'s errors are the ones operators already read. Addresses in 127.0.0.0/8 are local
/// on Linux without being added, so the host's loopback is never touched for them.
public actor InterfaceAddresses {
    /// What this process added, per namespace (nil: the host's), to remove on change and stop.
    private var added: [String?: [(address: IPv4Address, interface: String)]] = [:]

    public init() {}

    /// Makes `addresses` present on `interface` in `netns`; brings `lo` up in a namespace.
    public func ensure(_ addresses: [IPv4Address], interface: String, netns: String?) throws(NamespaceError) {
        if let netns { try ip(["-n", netns, "link", "set", "lo", "up"]) }
        let present = try presentAddresses(netns: netns)
        let loopback = IPv4Prefix("127.0.0.0/8")!
        for address in addresses where !present.contains(address) && !(netns == nil && loopback.contains(address)) {
            try ip((netns.map { ["-n", $0] } ?? []) + ["addr", "add", "\(address)/32", "dev", interface])
            added[netns, default: []].append((address, interface))
        }
    }

    /// Removes what this process added in `netns` that is not in `keep`.
    public func release(netns: String?, keeping keep: Set<IPv4Address> = []) {
        let (drop, stay) = (added[netns] ?? []).reduce(into: ([(IPv4Address, String)](), [(IPv4Address, String)]())) {
            if keep.contains($1.address) { $0.1.append($1) } else { $0.0.append($1) }
        }
        for (address, interface) in drop {
            // Best effort: someone may have removed it already, or the namespace is gone.
            _ = try? ip((netns.map { ["-n", $0] } ?? []) + ["addr", "del", "\(address)/32", "dev", interface])
        }
        added[netns] = stay
    }

    public func releaseAll() {
        for netns in Array(added.keys) { release(netns: netns) }
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
