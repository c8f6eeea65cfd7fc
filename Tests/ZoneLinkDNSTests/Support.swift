import CLDNS
import Foundation
import NIOCore
import ZoneLinkCore
@testable import ZoneLinkDNS

/// The package root, for the example configs and zone files.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Builds a query message by hand, as a client would.
func queryMessage(
    _ name: String, _ type: RRType, id: UInt16 = 0x1234, flags: UInt16 = HeaderFlags.rd, qclass: UInt16 = DNSClass.internet,
    edns: (size: UInt16, version: UInt8, dnssecOK: Bool)? = (1232, 0, false)
) -> [UInt8] {
    var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
    for label in name.split(separator: ".") {
        bytes.append(UInt8(label.utf8.count))
        bytes += label.utf8
    }
    bytes += [0, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), UInt8(qclass >> 8), UInt8(qclass & 0xFF)]
    if let edns {
        bytes += [0, 0, 41, UInt8(edns.size >> 8), UInt8(edns.size & 0xFF), 0, edns.version, edns.dnssecOK ? 0x80 : 0, 0, 0, 0]
    }
    return bytes
}

func parsedQuery(_ bytes: [UInt8]) -> Query? {
    if case .query(let query) = QueryParser.parse(bytes) { return query }
    return nil
}

/// A decoded response, through ldns: rcode, flags and each section's records as text.
struct DecodedResponse {
    var id: UInt16
    var rcode: UInt16
    var aa: Bool
    var tc: Bool
    var qdcount: Int
    var answer: [String]
    var authority: [String]
    var additional: [String]
    var ednsSize: Int?
    var ednsDO: Bool
    var extendedRcode: UInt8
    var size: Int
}

func decode(_ bytes: [UInt8]) -> DecodedResponse? {
    var packet: UnsafeMutablePointer<ldns_pkt>?
    guard ldns_wire2pkt(&packet, bytes, bytes.count) == LDNS_STATUS_OK, let packet else { return nil }
    defer { ldns_pkt_free(packet) }
    func records(_ list: UnsafeMutablePointer<ldns_rr_list>?) -> [String] {
        guard let list else { return [] }
        return (0..<ldns_rr_list_rr_count(list)).map { i in
            let text = ldns_rr2str(ldns_rr_list_rr(list, i))!
            defer { free(text) }
            return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\t", with: " ")
        }
    }
    let hasEDNS = ldns_pkt_edns(packet)
    return DecodedResponse(
        id: ldns_pkt_id(packet), rcode: UInt16(ldns_pkt_get_rcode(packet).rawValue), aa: ldns_pkt_aa(packet), tc: ldns_pkt_tc(packet),
        qdcount: Int(ldns_pkt_qdcount(packet)), answer: records(ldns_pkt_answer(packet)),
        authority: records(ldns_pkt_authority(packet)), additional: records(ldns_pkt_additional(packet)),
        ednsSize: hasEDNS ? Int(ldns_pkt_edns_udp_size(packet)) : nil, ednsDO: ldns_pkt_edns_do(packet),
        extendedRcode: ldns_pkt_edns_extended_rcode(packet), size: bytes.count)
}

/// Answers `message` with `responder` and returns the response bytes (nil if dropped).
func respond(
    _ responder: Responder, _ message: [UInt8], vpc: String? = nil, zone: String? = nil, source: String? = nil,
    transport: Responder.Transport = .udp
) -> [UInt8]? {
    var output = ByteBuffer()
    let outcome = message.withUnsafeBytes {
        responder.respond(
            to: $0, listener: ListenerContext(vpc: vpc, zone: zone), source: source.flatMap { IPv4Address($0) },
            transport: transport, into: &output)
    }
    guard case .answered = outcome else { return nil }
    return Array(output.readableBytesView)
}
