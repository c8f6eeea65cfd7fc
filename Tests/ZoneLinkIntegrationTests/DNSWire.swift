// Raw DNS on the wire: queries built by hand (so that malformed ones can be built too),
// responses decoded by libldns, and blocking UDP/TCP clients with timeouts.
import CLDNS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum RRType {
    static let A: UInt16 = 1, NS: UInt16 = 2, CNAME: UInt16 = 5, SOA: UInt16 = 6, MX: UInt16 = 15
    static let TXT: UInt16 = 16, AAAA: UInt16 = 28, OPT: UInt16 = 41, ANY: UInt16 = 255
}

enum Rcode {
    static let NOERROR = 0, FORMERR = 1, SERVFAIL = 2, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5
    static func name(_ code: Int) -> String {
        ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"].indices.contains(code)
            ? ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"][code] : "RCODE\(code)"
    }
}

enum DNSQuery {
    /// Wire form of a presentation name (no escapes; labels as given, case kept).
    static func encodeName(_ name: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in name.split(separator: ".", omittingEmptySubsequences: true) {
            let bytes = Array(label.utf8)
            out.append(UInt8(bytes.count))
            out += bytes
        }
        out.append(0)
        return out
    }

    static func header(id: UInt16, qr: Bool = false, opcode: UInt8 = 0, rd: Bool = false,
                       qd: UInt16 = 1, an: UInt16 = 0, ns: UInt16 = 0, ar: UInt16 = 0) -> [UInt8] {
        let flags0: UInt8 = (qr ? 0x80 : 0) | ((opcode & 0xF) << 3) | (rd ? 0x01 : 0)
        return [UInt8(id >> 8), UInt8(id & 0xFF), flags0, 0,
                UInt8(qd >> 8), UInt8(qd & 0xFF), UInt8(an >> 8), UInt8(an & 0xFF),
                UInt8(ns >> 8), UInt8(ns & 0xFF), UInt8(ar >> 8), UInt8(ar & 0xFF)]
    }

    /// An OPT pseudo-record (root owner, payload size, version, DO bit, no options).
    static func opt(payload: UInt16, version: UInt8 = 0, doBit: Bool = false, rdata: [UInt8] = []) -> [UInt8] {
        [0, 0, 41, UInt8(payload >> 8), UInt8(payload & 0xFF), 0, version, doBit ? 0x80 : 0, 0,
         UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)] + rdata
    }

    static func build(id: UInt16, name: String, type: UInt16, qclass: UInt16 = 1, rd: Bool = false,
                      opcode: UInt8 = 0, edns: UInt16? = nil, doBit: Bool = false,
                      ednsVersion: UInt8 = 0) -> [UInt8] {
        var msg = header(id: id, opcode: opcode, rd: rd, ar: edns == nil ? 0 : 1)
        msg += encodeName(name)
        msg += [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(qclass >> 8), UInt8(qclass & 0xFF)]
        if let edns { msg += opt(payload: edns, version: ednsVersion, doBit: doBit) }
        return msg
    }
}

/// One resource record as ldns prints it: `owner TTL CLASS TYPE RDATA`.
struct RR: Sendable, Hashable, CustomStringConvertible {
    var owner: String
    var ttl: Int
    var rclass: String
    var type: String
    var rdata: String
    var text: String
    var description: String { text }
}

/// A response decoded by ldns.
struct DNSResponse: Sendable, CustomStringConvertible {
    var id: UInt16
    var qr, aa, tc, rd, ra: Bool
    var opcode: Int
    var rcode: Int          // header rcode (4 bits)
    var question: [String]
    var answer: [RR]
    var authority: [RR]
    var additional: [RR]
    var hasOPT: Bool
    var ednsPayload: Int
    var ednsVersion: Int
    var ednsExtendedRcode: Int
    var ednsDO: Bool
    var size: Int
    var text: String        // ldns_pkt2str

    var fullRcode: Int { (ednsExtendedRcode << 4) | rcode }
    var description: String { cap(text, 4000) }

    /// Decodes with `ldns_wire2pkt`; nil when ldns rejects the message.
    static func parse(_ bytes: [UInt8]) -> DNSResponse? {
        var pkt: UnsafeMutablePointer<ldns_pkt>? = nil
        let status = bytes.withUnsafeBufferPointer { buf in
            ldns_wire2pkt(&pkt, buf.baseAddress, buf.count)
        }
        guard status == LDNS_STATUS_OK, let pkt else { return nil }
        defer { ldns_pkt_free(pkt) }
        var r = DNSResponse(
            id: ldns_pkt_id(pkt), qr: ldns_pkt_qr(pkt), aa: ldns_pkt_aa(pkt), tc: ldns_pkt_tc(pkt),
            rd: ldns_pkt_rd(pkt), ra: ldns_pkt_ra(pkt),
            opcode: Int(ldns_pkt_get_opcode(pkt).rawValue), rcode: Int(ldns_pkt_get_rcode(pkt).rawValue),
            question: [], answer: [], authority: [], additional: [],
            hasOPT: ldns_pkt_edns(pkt), ednsPayload: Int(ldns_pkt_edns_udp_size(pkt)),
            ednsVersion: Int(ldns_pkt_edns_version(pkt)),
            ednsExtendedRcode: Int(ldns_pkt_edns_extended_rcode(pkt)),
            ednsDO: ldns_pkt_edns_do(pkt), size: bytes.count, text: "")
        r.question = rrList(ldns_pkt_question(pkt)).map(\.text)
        r.answer = rrList(ldns_pkt_answer(pkt))
        r.authority = rrList(ldns_pkt_authority(pkt))
        r.additional = rrList(ldns_pkt_additional(pkt))
        if let s = ldns_pkt2str(pkt) {
            r.text = String(cString: s)
            free(s)
        }
        return r
    }

    /// Canonical strings of a section (ldns_rr2canonical, then ldns_rr2str, lowercased), sorted.
    static func canonicalSection(_ bytes: [UInt8], section: Int) -> [String]? {
        var pkt: UnsafeMutablePointer<ldns_pkt>? = nil
        let status = bytes.withUnsafeBufferPointer { ldns_wire2pkt(&pkt, $0.baseAddress, $0.count) }
        guard status == LDNS_STATUS_OK, let pkt else { return nil }
        defer { ldns_pkt_free(pkt) }
        let list: UnsafeMutablePointer<ldns_rr_list>? = section == 1 ? ldns_pkt_answer(pkt)
            : section == 2 ? ldns_pkt_authority(pkt) : ldns_pkt_additional(pkt)
        guard let list else { return [] }
        var out: [String] = []
        for i in 0..<ldns_rr_list_rr_count(list) {
            guard let rr = ldns_rr_list_rr(list, i), let copy = ldns_rr_clone(rr) else { continue }
            ldns_rr2canonical(copy)
            if let s = ldns_rr2str(copy) {
                out.append(String(cString: s).trimmingCharacters(in: .whitespacesAndNewlines).lowercased())
                free(s)
            }
            ldns_rr_free(copy)
        }
        return out.sorted()
    }

    private static func rrList(_ list: UnsafeMutablePointer<ldns_rr_list>?) -> [RR] {
        guard let list else { return [] }
        var out: [RR] = []
        for i in 0..<ldns_rr_list_rr_count(list) {
            guard let rr = ldns_rr_list_rr(list, i), let s = ldns_rr2str(rr) else { continue }
            let text = String(cString: s).trimmingCharacters(in: .whitespacesAndNewlines)
            free(s)
            out.append(RR(presentation: text))
        }
        return out
    }

    func answers(ofType type: String) -> [RR] { answer.filter { $0.type == type } }
    /// Sorted rdata of the answer records of one type.
    func answerData(_ type: String) -> [String] { answers(ofType: type).map(\.rdata).sorted() }
}

extension RR {
    /// Parses a presentation line `owner ttl class type rdata…` (tabs or spaces).
    init(presentation text: String) {
        let fields = text.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
        if fields.count >= 4, let ttl = Int(fields[1]) {
            self.init(owner: fields[0], ttl: ttl, rclass: fields[2], type: fields[3],
                      rdata: fields.dropFirst(4).joined(separator: " "), text: text)
        } else if fields.count >= 3 {  // question-like: owner class type
            self.init(owner: fields[0], ttl: -1, rclass: fields[1], type: fields[2],
                      rdata: fields.dropFirst(3).joined(separator: " "), text: text)
        } else {
            self.init(owner: text, ttl: -1, rclass: "", type: "", rdata: "", text: text)
        }
    }
}

// MARK: - Sockets

private func withSockaddr<T>(_ port: UInt16, _ host: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var addr = sockaddr_in(port: port, host: host)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// Waits until `fd` is readable; false on timeout.
private func pollReadable(_ fd: Int32, timeout: Double) -> Bool {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let ms = Int32(max(0, timeout * 1000))
    let n = poll(&pfd, 1, ms)
    return n > 0
}

/// A UDP socket bound to a loopback source address (any port).
final class UDPClient: @unchecked Sendable {
    let fd: Int32

    init(source: String = "127.0.0.1", receiveBuffer: Int32 = 4 << 20) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(): errno \(errno)") }
        var size = receiveBuffer
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let rc = withSockaddr(0, source) { bind(fd, $0, $1) }
        guard rc == 0 else {
            close(fd)
            throw HarnessError("bind(\(source)): errno \(errno)")
        }
    }
    deinit { close(fd) }

    /// Sends one datagram; false when the kernel refuses it (e.g. buffer full).
    @discardableResult
    func send(_ bytes: [UInt8], port: UInt16, host: String = "127.0.0.1") -> Bool {
        let n = bytes.withUnsafeBytes { buf in
            withSockaddr(port, host) { sendto(fd, buf.baseAddress, buf.count, 0, $0, $1) }
        }
        return n == bytes.count
    }

    /// One datagram, or nil after `timeout` seconds.
    func receive(timeout: Double) -> [UInt8]? {
        guard pollReadable(fd, timeout: timeout) else { return nil }
        var buf = [UInt8](repeating: 0, count: 65_535)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        guard n >= 0 else { return nil }
        return Array(buf[0..<n])
    }

    /// Every datagram already queued, without waiting.
    func drain(limit: Int = 100_000) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65_535)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 { break }
            out.append(Array(buf[0..<n]))
        }
        return out
    }

    /// Sends a query and waits for the reply with the same ID (others are skipped).
    func query(_ message: [UInt8], port: UInt16, host: String = "127.0.0.1", timeout: Double = 2) -> [UInt8]? {
        _ = drain()
        guard send(message, port: port, host: host) else { return nil }
        let deadline = monotonicNow() + timeout
        while true {
            let left = deadline - monotonicNow()
            if left <= 0 { return nil }
            guard let reply = receive(timeout: left) else { return nil }
            if reply.count >= 2 && reply[0] == message[0] && reply[1] == message[1] { return reply }
        }
    }
}

/// A blocking TCP connection to a loopback port.
final class TCPClient: @unchecked Sendable {
    let fd: Int32
    private var closed = false

    init(port: UInt16, host: String = "127.0.0.1", source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(): errno \(errno)") }
        if let source {
            let rc = withSockaddr(0, source) { bind(fd, $0, $1) }
            guard rc == 0 else { close(fd); throw HarnessError("bind(\(source)): errno \(errno)") }
        }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withSockaddr(port, host) { connect(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw HarnessError("connect(\(host):\(port)): errno \(e) (\(String(cString: strerror(e))))")
        }
    }
    deinit { if !closed { close(fd) } }

    func close_() {
        if !closed { closed = true; close(fd) }
    }

    /// Writes everything; false when the peer is gone.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buf in
                Glibc.send(fd, buf.baseAddress! + offset, buf.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    enum ReadResult { case data([UInt8]), eof, timeout, error(Int32) }

    /// Exactly `count` bytes within `timeout` seconds.
    func read(_ count: Int, timeout: Double) -> ReadResult {
        var out: [UInt8] = []
        let deadline = monotonicNow() + timeout
        var buf = [UInt8](repeating: 0, count: 65_536)
        while out.count < count {
            let left = deadline - monotonicNow()
            if left <= 0 || !pollReadable(fd, timeout: left) { return .timeout }
            let want = min(buf.count, count - out.count)
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, want, Int32(MSG_DONTWAIT)) }
            if n == 0 { return .eof }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return .error(errno)
            }
            out += buf[0..<n]
        }
        return .data(out)
    }

    /// One length-prefixed DNS message; nil on EOF, error or timeout.
    func readMessage(timeout: Double) -> [UInt8]? {
        let deadline = monotonicNow() + timeout
        guard case .data(let prefix) = read(2, timeout: timeout) else { return nil }
        let length = Int(prefix[0]) << 8 | Int(prefix[1])
        guard case .data(let body) = read(length, timeout: max(0, deadline - monotonicNow())) else { return nil }
        return body
    }

    static func framed(_ message: [UInt8]) -> [UInt8] {
        [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
    }

    /// Waits until the server closes the connection (EOF or reset); the seconds it took, or nil on timeout.
    func waitForClose(timeout: Double) -> Double? {
        let start = monotonicNow()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = start + timeout - monotonicNow()
            if left <= 0 { return nil }
            guard pollReadable(fd, timeout: left) else { return nil }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 { return monotonicNow() - start }
            if n < 0 && errno != EAGAIN && errno != EINTR { return monotonicNow() - start }
        }
    }
}

/// Query helpers returning decoded responses.
enum DNSClient {
    static func udp(_ message: [UInt8], port: UInt16, source: String = "127.0.0.1",
                    timeout: Double = 2) async throws -> [UInt8]? {
        try await offload {
            let client = try UDPClient(source: source)
            return client.query(message, port: port, timeout: timeout)
        }
    }

    static func tcp(_ message: [UInt8], port: UInt16, source: String? = nil,
                    timeout: Double = 3) async throws -> [UInt8]? {
        try await offload {
            let client = try TCPClient(port: port, source: source)
            defer { client.close_() }
            guard client.write(TCPClient.framed(message)) else { return nil }
            return client.readMessage(timeout: timeout)
        }
    }
}
