import Crypto
import Foundation
import ZoneLinkCore

/// Which clients a transferred view answers as: a VPC, and optionally an availability zone.
public struct ViewKey: Hashable, Sendable, CustomStringConvertible {
    public var vpc: String
    /// Nil: a client of no known zone (every healthy ENI, no affinity).
    public var zone: String?

    public init(vpc: String, zone: String?) {
        self.vpc = vpc
        self.zone = zone
    }

    public var description: String { zone.map { "\(vpc)/\($0)" } ?? vpc }

    /// The view of clients of no VPC (a listener without `vpc`), in `zone` if one is known.
    /// No secondary carries it (a secondary names its VPC); clients' serials need a key for it.
    public static func outside(zone: String?) -> ViewKey { ViewKey(vpc: "", zone: zone) }

    var isOutside: Bool { vpc.isEmpty }
}

/// One record as a transfer carries it: data in wire form, names in it uncompressed.
public struct TransferRecord: Sendable, Hashable {
    public var owner: DNSName
    public var type: RRType
    public var ttl: UInt32
    public var rdata: [UInt8]
}

/// A zone as one view's secondary holds it: every record a client of that view could be
/// answered, the ENIs of each endpoint name chosen as for such a client (zone affinity,
/// current health). SOA first; `records` excludes the SOA.
public struct TransferZone: Sendable {
    public let apex: DNSName
    public let soa: TransferRecord
    public let records: [TransferRecord]

    public var serial: UInt32 {
        let d = soa.rdata, at = d.count - 20
        return UInt32(d[at]) << 24 | UInt32(d[at + 1]) << 16 | UInt32(d[at + 2]) << 8 | UInt32(d[at + 3])
    }

    /// What an AXFR sends: the SOA, every other record, the SOA again (RFC 5936 section 2.2).
    public var axfrRecords: [TransferRecord] { [soa] + records + [soa] }

    /// A digest of the content without the serial: equal digests, nothing for a secondary to fetch.
    public var contentDigest: [UInt8] {
        var hasher = SHA256()
        var soaWithoutSerial = soa
        for i in (soa.rdata.count - 20)..<(soa.rdata.count - 16) { soaWithoutSerial.rdata[i] = 0 }
        for record in [soaWithoutSerial] + records {
            var bytes = record.owner.wire
            bytes.append16(record.type.rawValue)
            bytes.append32(record.ttl)
            bytes.append16(UInt16(truncatingIfNeeded: record.rdata.count))
            bytes += record.rdata
            hasher.update(data: bytes)
        }
        return Array(hasher.finalize())
    }

    /// This zone with its SOA serial set to `serial`.
    public func with(serial: UInt32) -> TransferZone {
        var soa = self.soa
        let at = soa.rdata.count - 20
        soa.rdata[at] = UInt8(serial >> 24)
        soa.rdata[at + 1] = UInt8(serial >> 16 & 0xFF)
        soa.rdata[at + 2] = UInt8(serial >> 8 & 0xFF)
        soa.rdata[at + 3] = UInt8(serial & 0xFF)
        return TransferZone(apex: apex, soa: soa, records: records)
    }

    init(apex: DNSName, soa: TransferRecord, records: [TransferRecord]) {
        self.apex = apex
        self.soa = soa
        self.records = records
    }
}

/// Builds the zones of a view from the answer engine: the same zones and the same choice of
/// ENIs as answering, so a secondary answers as ZoneLink does. Pure.
public enum ViewContent {
    /// The zones `view` transfers (the generated zone, then the VPC's private domains), or
    /// nil when the VPC is not in the catalog.
    public static func zones(of view: ViewKey, engine: AnswerEngine, health: ZoneHealth) -> [TransferZone]? {
        guard engine.catalog.vpc(view.vpc) != nil else { return nil }
        return engine.transferableZones(vpc: view.vpc).compactMap { zone($0, clientZone: view.zone, engine: engine, health: health) }
    }

    /// One zone of a view, or nil when the view does not hold `apex`.
    public static func zone(_ apex: DNSName, of view: ViewKey, engine: AnswerEngine, health: ZoneHealth) -> TransferZone? {
        transferable(apex, in: view, engine: engine).flatMap { zone($0, clientZone: view.zone, engine: engine, health: health) }
    }

    /// The zone `apex` of `view` as the engine holds it, without building its content; nil
    /// when the view does not hold it.
    static func transferable(_ apex: DNSName, in view: ViewKey, engine: AnswerEngine) -> Zone? {
        guard view.isOutside || engine.catalog.vpc(view.vpc) != nil else { return nil }
        return engine.transferableZones(vpc: view.vpc).first(where: { $0.apex == apex })
    }

    static func zone(_ zone: Zone, clientZone: String?, engine: AnswerEngine, health: ZoneHealth) -> TransferZone? {
        var soa: TransferRecord?
        var records: [TransferRecord] = []
        // Any order is a valid AXFR (RFC 5936 section 2.2); this one is stable, so that two
        // transfers of the same content are byte for byte the same (and digest the same, which
        // `ViewSerials` relies on): the names' wire bytes, compared as bytes. Spelling every
        // name as text and comparing the strings cost seconds for a 100,000-endpoint view, paid
        // on the answering thread by the first SOA question after a fresh start.
        let owners = zone.owners.sorted { lhs, rhs in
            lhs.wire.withUnsafeBufferPointer { l in
                rhs.wire.withUnsafeBufferPointer { r in
                    let common = memcmp(l.baseAddress!, r.baseAddress!, min(l.count, r.count))
                    return common < 0 || (common == 0 && l.count < r.count)
                }
            }
        }
        for owner in owners {
            for rrset in zone.lookup(owner)!.sorted(by: { $0.type.rawValue < $1.type.rawValue }) {
                let data = rrset.enis.map { engine.records(of: rrset, chosenBy: $0, clientZone: clientZone, health: health) } ?? rrset.rdata
                for rdata in data {
                    let record = TransferRecord(owner: owner, type: rrset.type, ttl: rrset.ttl, rdata: rdata)
                    if rrset.type == .soa && owner == zone.apex {
                        if soa == nil { soa = record }
                    } else {
                        records.append(record)
                    }
                }
            }
        }
        guard let soa, soa.rdata.count >= 22 else { return nil }
        return TransferZone(apex: zone.apex, soa: soa, records: records)
    }
}

extension ViewContent {
    /// The catalog zone (RFC 9432) every key can transfer: its members are the zones of the
    /// key's view, so a Knot secondary that consumes it serves each `privateDomain` zone that
    /// appears in the view later without a change to its config. The name is the same for
    /// every view (the key decides the content, as for the member zones) and lies under
    /// `invalid.` (RFC 6761), so it can never clash with a zone that is resolved.
    public static let catalogApex = DNSName("catalog.zonelink.invalid")!

    /// The catalog zone of `view`, or nil when the VPC is not in the catalog.
    public static func catalogZone(of view: ViewKey, engine: AnswerEngine) -> TransferZone? {
        guard engine.catalog.vpc(view.vpc) != nil else { return nil }
        let apex = catalogApex
        let invalid = DNSName("invalid")!
        var soa = invalid.wire + invalid.wire
        for value: UInt32 in [0, 3600, 600, 86400, 0] { soa.append32(value) }
        var records = [
            TransferRecord(owner: apex, type: .ns, ttl: 0, rdata: invalid.wire),
            TransferRecord(owner: apex.prepending(Array("version".utf8)), type: .txt, ttl: 0, rdata: [1, UInt8(ascii: "2")]),
        ]
        let zones = apex.prepending(Array("zones".utf8))
        for member in engine.transferableZones(vpc: view.vpc).map(\.apex) {
            // A member's label: stable for the zone's name (RFC 9432 section 4.1 wants it unique).
            let digest = SHA256.hash(data: member.wire).prefix(8).map { String(format: "%02x", $0) }.joined()
            records.append(TransferRecord(owner: zones.prepending(Array(digest.utf8)), type: .ptr, ttl: 0, rdata: member.wire))
        }
        return TransferZone(apex: apex, soa: TransferRecord(owner: apex, type: .soa, ttl: 0, rdata: soa), records: records)
    }
}
