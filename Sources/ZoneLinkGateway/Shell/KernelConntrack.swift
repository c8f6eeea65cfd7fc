import CNetfilterConntrack
import Glibc
import ZoneLinkCore

/// Conntrack of the namespace the calling thread is in, through libnetfilter_conntrack: the
/// kernel data path's NAT table. Every call opens its own netlink handle (so the handle
/// belongs to the caller's namespace) and closes it before returning; call these on the
/// gateway namespace's thread (`NetworkNamespace.run`). Nothing here runs per packet: a dump
/// for `nat list` and metrics, a deletion pass after a table change.
enum KernelConntrack {
    /// Up to `limit` entries that `keep` accepts, read in one dump of the IPv4 table (the dump
    /// stops once `limit` are kept, so a namespace with a million entries costs `limit`
    /// values, not a million).
    static func entries(limit: Int, keep: @escaping (KernelFlows.ConntrackEntry) -> Bool) throws(KernelConntrackError) -> [KernelFlows.ConntrackEntry] {
        final class Dump {
            var kept: [KernelFlows.ConntrackEntry] = []
            let limit: Int
            let keep: (KernelFlows.ConntrackEntry) -> Bool
            init(limit: Int, keep: @escaping (KernelFlows.ConntrackEntry) -> Bool) {
                self.limit = limit
                self.keep = keep
            }
        }
        guard limit > 0 else { return [] }
        let dump = Dump(limit: limit, keep: keep)
        try withHandle { handle throws(KernelConntrackError) in
            let context = Unmanaged.passUnretained(dump).toOpaque()
            nfct_callback_register(handle, NFCT_T_ALL, { _, ct, data in
                guard let ct, let data else { return ZL_NFCT_CB_CONTINUE }
                let dump = Unmanaged<Dump>.fromOpaque(data).takeUnretainedValue()
                if let entry = KernelConntrack.entry(ct), dump.keep(entry) {
                    dump.kept.append(entry)
                    if dump.kept.count >= dump.limit { return ZL_NFCT_CB_STOP }
                }
                return ZL_NFCT_CB_CONTINUE
            }, context)
            var family = UInt32(AF_INET)
            // A dump the callback stopped reports no error of its own; one the kernel refused does.
            if nfct_query(handle, NFCT_Q_DUMP, &family) != 0, dump.kept.count < limit {
                throw .query(what: "list", errno: errno)
            }
        }
        return dump.kept
    }

    /// Deletes every entry `delete` names; returns how many went. Entries the kernel dropped
    /// meanwhile (a flow that ended) are not an error.
    static func delete(where delete: @escaping (KernelFlows.ConntrackEntry) -> Bool) throws(KernelConntrackError) -> Int {
        final class Pass {
            var deleted = 0
            let delete: (KernelFlows.ConntrackEntry) -> Bool
            let destroyer: OpaquePointer
            init(delete: @escaping (KernelFlows.ConntrackEntry) -> Bool, destroyer: OpaquePointer) {
                self.delete = delete
                self.destroyer = destroyer
            }
        }
        // Two handles: the dump streams on one while the other destroys (a handle cannot
        // take a query while its own dump is being read).
        var deleted = 0
        try withHandle { destroyer throws(KernelConntrackError) in
            try withHandle { handle throws(KernelConntrackError) in
                let pass = Pass(delete: delete, destroyer: destroyer)
                nfct_callback_register(handle, NFCT_T_ALL, { _, ct, data in
                    guard let ct, let data else { return ZL_NFCT_CB_CONTINUE }
                    let pass = Unmanaged<Pass>.fromOpaque(data).takeUnretainedValue()
                    if let entry = KernelConntrack.entry(ct), pass.delete(entry),
                       nfct_query(pass.destroyer, NFCT_Q_DESTROY, UnsafeRawPointer(ct)) == 0 {
                        pass.deleted += 1
                    }
                    return ZL_NFCT_CB_CONTINUE
                }, Unmanaged.passUnretained(pass).toOpaque())
                var family = UInt32(AF_INET)
                guard nfct_query(handle, NFCT_Q_DUMP, &family) == 0 else { throw .query(what: "delete from", errno: errno) }
                deleted = pass.deleted
            }
        }
        return deleted
    }

    private static func withHandle(_ body: (OpaquePointer) throws(KernelConntrackError) -> Void) throws(KernelConntrackError) {
        guard let handle = nfct_open(UInt8(ZL_NFCT_SUBSYS_CONNTRACK), 0) else { throw .open(errno: errno) }
        defer { nfct_close(handle) }
        try body(handle)
    }

    /// An IPv4 TCP or UDP entry in ZoneLink's terms; nil for anything else.
    static func entry(_ ct: OpaquePointer) -> KernelFlows.ConntrackEntry? {
        guard nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO) == UInt8(AF_INET) else { return nil }
        let proto: TransportProtocol
        switch Int32(nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO)) {
        case Int32(IPPROTO_TCP): proto = .tcp
        case Int32(IPPROTO_UDP): proto = .udp
        default: return nil
        }
        func endpoint(_ address: nf_conntrack_attr, _ port: nf_conntrack_attr) -> IPv4Endpoint {
            IPv4Endpoint(
                address: IPv4Address(UInt32(bigEndian: nfct_get_attr_u32(ct, address))), port: UInt16(bigEndian: nfct_get_attr_u16(ct, port)))
        }
        // A zone of the original direction only (`ct original zone set`) is reported in the
        // original tuple; a zone of both directions as the entry's.
        let zone: UInt16 =
            nfct_attr_is_set(ct, ATTR_ORIG_ZONE) > 0 ? nfct_get_attr_u16(ct, ATTR_ORIG_ZONE)
            : nfct_attr_is_set(ct, ATTR_ZONE) > 0 ? nfct_get_attr_u16(ct, ATTR_ZONE) : 0
        func u64(_ attribute: nf_conntrack_attr) -> UInt64? {
            nfct_attr_is_set(ct, attribute) > 0 ? nfct_get_attr_u64(ct, attribute) : nil
        }
        return KernelFlows.ConntrackEntry(
            proto: proto, zone: zone, mark: nfct_get_attr_u32(ct, ATTR_MARK),
            originalSource: endpoint(ATTR_ORIG_IPV4_SRC, ATTR_ORIG_PORT_SRC),
            originalDestination: endpoint(ATTR_ORIG_IPV4_DST, ATTR_ORIG_PORT_DST),
            replySource: endpoint(ATTR_REPL_IPV4_SRC, ATTR_REPL_PORT_SRC),
            replyDestination: endpoint(ATTR_REPL_IPV4_DST, ATTR_REPL_PORT_DST),
            bytesOriginal: u64(ATTR_ORIG_COUNTER_BYTES) ?? 0, bytesReply: u64(ATTR_REPL_COUNTER_BYTES) ?? 0,
            startNanoseconds: u64(ATTR_TIMESTAMP_START).flatMap { $0 == 0 ? nil : $0 },
            timeoutSeconds: nfct_get_attr_u32(ct, ATTR_TIMEOUT))
    }
}

public enum KernelConntrackError: Error, CustomStringConvertible {
    case open(errno: Int32)
    case query(what: String, errno: Int32)

    public var description: String {
        switch self {
        case .open(let errno):
            "cannot open conntrack's netlink socket in the gateway namespace: \(String(cString: strerror(errno))) (run zonelink as root; is nf_conntrack in the kernel?)"
        case .query(let what, let errno):
            "cannot \(what) the gateway namespace's conntrack table: \(String(cString: strerror(errno)))"
        }
    }
}
