import CLDNS
import Glibc
import ZoneLinkCore

/// Writes the generated zone of one view as an RFC 1035 master file, formatted by libldns,
/// so that NSD or Knot can serve the same names. Without `zone`, without zone affinity (an
/// endpoint name lists every ENI); with it, exactly what a secondary of that view holds
/// (`dns.secondaries[].zone`: affinity for clients in that zone, every ENI healthy).
public enum ZoneExport {
    public static func masterFile(catalog: Catalog, vpc: String?, zone clientZone: String? = nil) -> String {
        let engine = AnswerEngine(catalog: catalog)
        if let vpc, let clientZone,
           let view = ViewContent.zone(DNSName(catalog.domain)!, of: ViewKey(vpc: vpc, zone: clientZone), engine: engine, health: .allHealthy) {
            var lines = ["; ZoneLink generated zone \(view.apex) for VPC \(vpc) in zone \(clientZone), serial \(catalog.serial)"]
            for record in [view.soa] + view.records {
                lines.append(text(owner: record.owner, type: record.type, ttl: record.ttl, data: record.rdata))
            }
            return lines.joined(separator: "\n") + "\n"
        }
        let zone = engine.generatedZone(vpc: vpc)
        var lines = ["; ZoneLink generated zone \(zone.apex) for \(vpc.map { "VPC \($0)" } ?? "clients of no VPC"), serial \(catalog.serial)"]
        let apexFirst = zone.owners.sorted { lhs, rhs in
            if lhs == zone.apex { return rhs != zone.apex }
            if rhs == zone.apex { return false }
            return lhs.description < rhs.description
        }
        for owner in apexFirst {
            let rrsets = zone.lookup(owner)!.sorted { ($0.type == .soa ? 0 : 1, $0.type.rawValue) < ($1.type == .soa ? 0 : 1, $1.type.rawValue) }
            for rrset in rrsets {
                for data in rrset.rdata {
                    lines.append(text(owner: owner, type: rrset.type, ttl: rrset.ttl, data: data))
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One record in presentation form, by way of ldns's own parser and printer.
    static func text(owner: DNSName, type: RRType, ttl: UInt32, data: [UInt8]) -> String {
        var wire = owner.wire
        for value in [type.rawValue, DNSClass.internet] { wire += [UInt8(value >> 8), UInt8(value & 0xFF)] }
        wire += [UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xFF), UInt8(ttl >> 8 & 0xFF), UInt8(ttl & 0xFF)]
        wire += [UInt8(data.count >> 8), UInt8(data.count & 0xFF)] + data
        var rr: UnsafeMutablePointer<ldns_rr>?
        var position = 0
        guard ldns_wire2rr(&rr, wire, wire.count, &position, LDNS_SECTION_ANSWER) == LDNS_STATUS_OK, let rr,
              let printed = ldns_rr2str(rr)
        else { preconditionFailure("ldns rejected a record ZoneLink generated: \(owner) \(type)") }
        defer {
            free(printed)
            ldns_rr_free(rr)
        }
        var line = String(cString: printed)
        while line.last == "\n" { line.removeLast() }
        return line
    }
}
