import CLDNS
import Glibc

/// A zone file that could not be served, with what ldns said and where.
public struct ZoneFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var problem: String

    public var description: String {
        line.map { "\(path): line \($0): \(problem)" } ?? "\(path): \(problem)"
    }
}

/// Static zones from RFC 1035 master files, parsed by libldns, the DNS library of record.
public enum ZoneFile {
    public static func load(path: String) throws(ZoneFileError) -> Zone {
        guard let file = fopen(path, "r") else {
            throw ZoneFileError(path: path, line: nil, problem: "cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var parsed: UnsafeMutablePointer<ldns_zone>?
        var line: Int32 = 0
        let status = ldns_zone_new_frm_fp_l(&parsed, file, nil, 3600, LDNS_RR_CLASS_IN, &line)
        guard status == LDNS_STATUS_OK, let parsed else {
            throw ZoneFileError(path: path, line: Int(line), problem: String(cString: ldns_get_errorstr_by_id(status)))
        }
        defer { ldns_zone_deep_free(parsed) }
        guard let soa = ldns_zone_soa(parsed) else {
            throw ZoneFileError(path: path, line: nil, problem: "has no SOA record, so its apex is unknown")
        }
        let apex = name(ldns_rr_owner(soa))
        var records = [try record(soa, path: path)]
        let list = ldns_zone_rrs(parsed)
        for i in 0..<ldns_rr_list_rr_count(list) {
            let rr = ldns_rr_list_rr(list, i)!
            let (owner, rrset): (DNSName, RRset) = try record(rr, path: path)
            guard owner.isSubdomain(of: apex) else {
                throw ZoneFileError(path: path, line: nil, problem: "\(owner) lies outside the zone \(apex)")
            }
            guard rrset.type != .soa else {
                throw ZoneFileError(path: path, line: nil, problem: "has a second SOA record at \(owner)")
            }
            records.append((owner, rrset))
        }
        guard let zone = Zone(apex: apex, records: records) else {
            throw ZoneFileError(path: path, line: nil, problem: "has a malformed SOA record")
        }
        return zone
    }

    static func name(_ rdf: UnsafePointer<ldns_rdf>?) -> DNSName {
        DNSName(validatedWire: UnsafeBufferPointer(start: ldns_rdf_data(rdf), count: ldns_rdf_size(rdf)))
    }

    /// One ldns record as (owner, single-record rrset), with names in its data uncompressed.
    static func record(_ rr: UnsafeMutablePointer<ldns_rr>, path: String) throws(ZoneFileError) -> (DNSName, RRset) {
        let buffer = ldns_buffer_new(64)!
        defer { ldns_buffer_free(buffer) }
        guard ldns_rr_rdata2buffer_wire(buffer, rr) == LDNS_STATUS_OK else {
            throw ZoneFileError(path: path, line: nil, problem: "has a record ldns cannot encode")
        }
        let data = Array(UnsafeBufferPointer(start: ldns_buffer_begin(buffer), count: ldns_buffer_position(buffer)))
        let type = RRType(rawValue: UInt16(ldns_rr_get_type(rr).rawValue))
        // The name that answering follows: CNAME and NS targets, MX exchanges, SRV targets.
        let targetField: Int? = switch type {
        case .cname, .ns: 0
        case .mx: 1
        case .srv: 3
        default: nil
        }
        let targets = targetField.map { [name(ldns_rr_rdf(rr, $0))] } ?? []
        return (name(ldns_rr_owner(rr)), RRset(type: type, ttl: ldns_rr_ttl(rr), rdata: [data], targets: targets))
    }
}
