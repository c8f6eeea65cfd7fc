#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import ZoneLinkCore

extension Catalog {
    /// Loads `dns.zoneFiles`, reporting a file that cannot be served as a config issue at its key path.
    /// - Parameter files: parsed zones to reuse for files that did not change since.
    public func loadStaticZones(file: String, reusing files: StaticZoneFiles? = nil) throws(ConfigError) -> [Zone] {
        var zones: [Zone] = []
        var issues: [ConfigIssue] = []
        for (i, path) in dns.zoneFiles.enumerated() {
            do {
                let zone = try files?.zone(at: path) ?? ZoneFile.load(path: path)
                if zone.apex == DNSName(domain) || zone.apex.isSubdomain(of: DNSName(domain)!) || DNSName(domain)!.isSubdomain(of: zone.apex) {
                    issues.append(ConfigIssue("dns.zoneFiles[\(i)]", "zone \(zone.apex) overlaps the generated domain \(domain)", hint: "serve a zone outside \(domain)"))
                } else if let (s, service) = services.enumerated().first(where: { _, service in
                    service.privateDomain.flatMap(DNSName.init).map { zone.apex == $0 || zone.apex.isSubdomain(of: $0) || $0.isSubdomain(of: zone.apex) } ?? false
                }) {
                    // A private domain in a static zone would let its provider capture the
                    // operator's names in every VPC with an endpoint of the service.
                    issues.append(ConfigIssue("endpointServices[\(s)].privateDomain", "\(service.privateDomain ?? "") overlaps the static zone \(zone.apex) (dns.zoneFiles[\(i)])", hint: "choose a private domain outside the operator's static zones"))
                } else if let other = zones.firstIndex(where: { $0.apex == zone.apex }) {
                    issues.append(ConfigIssue("dns.zoneFiles[\(i)]", "zone \(zone.apex) is already served by dns.zoneFiles[\(other)]", hint: "list each zone once"))
                } else {
                    zones.append(zone)
                }
            } catch {
                issues.append(ConfigIssue("dns.zoneFiles[\(i)]", "\(error)", hint: "fix the zone file; `ldns-read-zone \(path)` shows the same error"))
            }
        }
        guard issues.isEmpty else { throw ConfigError(file: file, issues: issues) }
        return zones
    }
}

/// Zone files parsed once: the zones of the last load, each with the file's identity and
/// modification time. An API change applies a new catalog with the same `dns.zoneFiles`; only
/// a file that was edited since (a reload after editing it, typically) is parsed again.
public final class StaticZoneFiles: Sendable {
    /// What tells one version of a file from another.
    private struct Stamp: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    private struct Parsed: Sendable {
        var stamp: Stamp
        var zone: Zone
    }

    private let parsed = Mutex<[String: Parsed]>([:])

    public init() {}

    /// The zone in the file at `path`, parsed now only when the file changed since last time.
    func zone(at path: String) throws -> Zone {
        var info = stat()
        guard stat(path, &info) == 0 else { return try ZoneFile.load(path: path) }  // ldns reports why
        let stamp = Stamp(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: info.st_mtim.tv_sec, modifiedNanoseconds: info.st_mtim.tv_nsec)
        if let known = parsed.withLock({ $0[path] }), known.stamp == stamp { return known.zone }
        let zone = try ZoneFile.load(path: path)
        parsed.withLock { $0[path] = Parsed(stamp: stamp, zone: zone) }
        return zone
    }
}
