import ZoneLinkCore

extension Catalog {
    /// Loads `dns.zoneFiles`, reporting a file that cannot be served as a config issue at its key path.
    public func loadStaticZones(file: String) throws(ConfigError) -> [Zone] {
        var zones: [Zone] = []
        var issues: [ConfigIssue] = []
        for (i, path) in dns.zoneFiles.enumerated() {
            do {
                let zone = try ZoneFile.load(path: path)
                if zone.apex == DNSName(domain) || zone.apex.isSubdomain(of: DNSName(domain)!) || DNSName(domain)!.isSubdomain(of: zone.apex) {
                    issues.append(ConfigIssue("dns.zoneFiles[\(i)]", "zone \(zone.apex) overlaps the generated domain \(domain)", hint: "serve a zone outside \(domain)"))
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
