import Crypto
import ZoneLinkCore

/// A TSIG key (RFC 8945) ready to sign: its name in wire form, its algorithm, its secret.
public struct TSIGKey: Sendable, Hashable {
    public let name: DNSName
    public let algorithm: TSIGAlgorithm
    let secret: SecretBytes

    public init(name: DNSName, algorithm: TSIGAlgorithm, secret: SecretBytes) {
        self.name = name
        self.algorithm = algorithm
        self.secret = secret
    }
}

/// The HMACs of RFC 8945 section 6 that ZoneLink speaks, by swift-crypto.
public enum TSIGAlgorithm: Sendable, Hashable, CaseIterable {
    case hmacSHA256, hmacSHA384, hmacSHA512

    public init(_ name: TSIGAlgorithmName) {
        switch name {
        case .hmacSHA256: self = .hmacSHA256
        case .hmacSHA384: self = .hmacSHA384
        case .hmacSHA512: self = .hmacSHA512
        }
    }

    /// The algorithm's name as it goes in the TSIG record.
    public var name: DNSName {
        switch self {
        case .hmacSHA256: DNSName("hmac-sha256")!
        case .hmacSHA384: DNSName("hmac-sha384")!
        case .hmacSHA512: DNSName("hmac-sha512")!
        }
    }

    public init?(wireName: DNSName) {
        guard let found = Self.allCases.first(where: { $0.name == wireName }) else { return nil }
        self = found
    }

    public var macLength: Int {
        switch self {
        case .hmacSHA256: 32
        case .hmacSHA384: 48
        case .hmacSHA512: 64
        }
    }

    func mac(_ data: [UInt8], secret: [UInt8]) -> [UInt8] {
        mac(of: [data], secret: secret)
    }

    /// The MAC of `pieces` one after the other: a 64 KiB message is hashed where it lies,
    /// not copied behind the previous MAC first.
    func mac(of pieces: [[UInt8]], secret: [UInt8]) -> [UInt8] {
        switch self {
        case .hmacSHA256: Self.mac(SHA256.self, pieces, secret)
        case .hmacSHA384: Self.mac(SHA384.self, pieces, secret)
        case .hmacSHA512: Self.mac(SHA512.self, pieces, secret)
        }
    }

    private static func mac<H: HashFunction>(_: H.Type, _ pieces: [[UInt8]], _ secret: [UInt8]) -> [UInt8] {
        var hmac = HMAC<H>(key: SymmetricKey(data: secret))
        for piece in pieces { hmac.update(data: piece) }
        return Array(hmac.finalize())
    }
}

/// TSIG error codes (RFC 8945 section 5.2, the record's Error field).
public enum TSIGError: UInt16, Sendable {
    case none = 0
    case badSig = 16
    case badKey = 17
    case badTime = 18
    case badTrunc = 22
}

/// A TSIG record as read from a message, and where it starts.
public struct TSIGRecord: Sendable, Equatable {
    public var keyName: DNSName
    public var algorithm: DNSName
    public var timeSigned: UInt64
    public var fudge: UInt16
    public var mac: [UInt8]
    public var originalID: UInt16
    public var error: UInt16
    public var otherData: [UInt8]
    /// Offset of the record's owner name in the message: what precedes it is what was signed.
    public var start: Int
}

/// Signing and verifying DNS messages with TSIG (RFC 8945). Pure: the time is an argument.
///
/// Every response message of a transfer is signed (section 5.3.1 allows gaps of up to 99; not
/// leaving any costs one HMAC per 64 KiB and spares the secondary the bookkeeping).
public enum TSIG {
    public static let type: UInt16 = 250
    /// The fudge ZoneLink signs with and allows on requests: 300 s, as RFC 8945 recommends.
    public static let fudge: UInt16 = 300
    static let classAny: UInt16 = 255

    /// What verifying a request found.
    public enum Verdict: Sendable, Equatable {
        case valid(TSIGKey, TSIGRecord)
        /// Unknown key, or a known key name with another algorithm: NOTAUTH, BADKEY, unsigned.
        case badKey(TSIGRecord)
        /// The MAC does not match: NOTAUTH, BADSIG, unsigned.
        case badSig(TSIGRecord)
        /// A valid MAC outside the fudge: NOTAUTH, BADTIME, signed, with the server's time.
        case badTime(TSIGKey, TSIGRecord)
        /// A MAC shorter than the algorithm's: NOTAUTH, BADTRUNC, unsigned.
        case badTrunc(TSIGRecord)
    }

    /// The message's TSIG record: nil when there is none; `.failure` when one is there but
    /// malformed or not last in the additional section (FORMERR, RFC 8945 section 5.2).
    public static func find(in message: [UInt8]) -> Result<TSIGRecord?, MalformedMessage> {
        var reader = WireReader(message, at: 4)
        guard let qd = reader.u16(), let an = reader.u16(), let ns = reader.u16(), let ar = reader.u16() else {
            return .failure(MalformedMessage("shorter than a header"))
        }
        for _ in 0..<qd {
            guard reader.name() != nil, reader.u32() != nil else { return .failure(MalformedMessage("question cut short")) }
        }
        let total = Int(an) + Int(ns) + Int(ar)
        for index in 0..<total {
            let start = reader.offset
            guard let record = reader.record() else { return .failure(MalformedMessage("record \(index + 1) cut short")) }
            guard record.type == type else { continue }
            guard index == total - 1, index >= Int(an) + Int(ns) else {
                return .failure(MalformedMessage("TSIG is not the last additional record"))
            }
            guard reader.offset == message.count else { return .failure(MalformedMessage("bytes after the TSIG record")) }
            var data = WireReader(Array(message[..<record.rdata.upperBound]), at: record.rdata.lowerBound)
            guard let algorithm = data.name(), let time = data.u48(), let fudge = data.u16(), let macSize = data.u16(),
                  let mac = data.bytes(Int(macSize)), let originalID = data.u16(), let error = data.u16(),
                  let otherLength = data.u16(), let other = data.bytes(Int(otherLength)), data.remaining == 0
            else { return .failure(MalformedMessage("TSIG data malformed")) }
            return .success(TSIGRecord(
                keyName: record.owner, algorithm: algorithm, timeSigned: time, fudge: fudge, mac: mac,
                originalID: originalID, error: error, otherData: other, start: start))
        }
        return .success(nil)
    }

    /// Checks a request's TSIG against the keys ZoneLink knows, at `now` (seconds since 1970).
    public static func verify(_ message: [UInt8], _ record: TSIGRecord, key lookup: (DNSName) -> TSIGKey?, now: UInt64) -> Verdict {
        guard let key = lookup(record.keyName), key.algorithm.name == record.algorithm else { return .badKey(record) }
        // RFC 8945 section 5.2.2.1: shorter than half the hash or 10 bytes is malformed, and
        // ZoneLink accepts no truncation at all.
        guard record.mac.count == key.algorithm.macLength else { return .badTrunc(record) }
        let expected = key.algorithm.mac(signedData(of: message, record), secret: key.secret.bytes)
        guard constantTimeEqual(expected, record.mac) else { return .badSig(record) }
        let low = record.timeSigned >= UInt64(record.fudge) ? record.timeSigned - UInt64(record.fudge) : 0
        guard now >= low, now <= record.timeSigned + UInt64(record.fudge) else { return .badTime(key, record) }
        return .valid(key, record)
    }

    /// What the request's MAC covered: the message before its TSIG record, with the original
    /// ID and one additional record less, then the TSIG variables (section 4.3.3).
    static func signedData(of message: [UInt8], _ record: TSIGRecord) -> [UInt8] {
        var data = Array(message[..<record.start])
        data[0] = UInt8(record.originalID >> 8)
        data[1] = UInt8(record.originalID & 0xFF)
        let arcount = (UInt16(data[10]) << 8 | UInt16(data[11])) &- 1
        data[10] = UInt8(arcount >> 8)
        data[11] = UInt8(arcount & 0xFF)
        data += variables(
            keyName: record.keyName, algorithm: record.algorithm, time: record.timeSigned, fudge: record.fudge,
            error: record.error, otherData: record.otherData)
        return data
    }

    static func variables(keyName: DNSName, algorithm: DNSName, time: UInt64, fudge: UInt16, error: UInt16, otherData: [UInt8]) -> [UInt8] {
        var out = keyName.wire
        out.append16(classAny)
        out.append32(0)
        out += algorithm.wire
        out.append48(time)
        out.append16(fudge)
        out.append16(error)
        out.append16(UInt16(otherData.count))
        out += otherData
        return out
    }

    /// Where a signing chain stands: the MAC of the previous message (or the request's, before
    /// the first response message), which the next MAC covers.
    public struct Chain: Sendable {
        public let key: TSIGKey
        public private(set) var previousMAC: [UInt8]
        /// False before the first message: it covers all the variables, later ones only the timers.
        private var started = false

        public init(key: TSIGKey, requestMAC: [UInt8]) {
            self.key = key
            self.previousMAC = requestMAC
        }

        /// `message` (its TSIG not yet added) with a TSIG record appended and counted.
        /// `originalID` is the request's; `error` and `otherData` as section 5.3 says.
        public mutating func sign(
            _ message: [UInt8], originalID: UInt16, time: UInt64, error: TSIGError = .none, otherData: [UInt8] = []
        ) -> [UInt8] {
            var before: [UInt8] = []
            if !previousMAC.isEmpty {
                before.append16(UInt16(previousMAC.count))
                before += previousMAC
            }
            var after: [UInt8] = []
            if started {
                after.append48(time)
                after.append16(TSIG.fudge)
            } else {
                after = TSIG.variables(
                    keyName: key.name, algorithm: key.algorithm.name, time: time, fudge: TSIG.fudge, error: error.rawValue,
                    otherData: otherData)
            }
            let mac = key.algorithm.mac(of: [before, message, after], secret: key.secret.bytes)
            started = true
            previousMAC = mac
            return TSIG.append(
                to: message, keyName: key.name, algorithm: key.algorithm.name, time: time, mac: mac, originalID: originalID,
                error: error, otherData: otherData)
        }
    }

    /// Signs a request (a NOTIFY, or a test's query): no request MAC precedes it.
    public static func signRequest(_ message: [UInt8], key: TSIGKey, time: UInt64) -> (message: [UInt8], mac: [UInt8]) {
        var chain = Chain(key: key, requestMAC: [])
        let id = UInt16(message[0]) << 8 | UInt16(message[1])
        let signed = chain.sign(message, originalID: id, time: time)
        return (signed, chain.previousMAC)
    }

    /// An unsigned TSIG (MAC size 0) carrying `error`: the answer to BADKEY, BADSIG and
    /// BADTRUNC, where ZoneLink has no key the client would accept (section 5.3.2).
    public static func appendUnsigned(to message: [UInt8], record: TSIGRecord, error: TSIGError, time: UInt64) -> [UInt8] {
        append(to: message, keyName: record.keyName, algorithm: record.algorithm, time: time, mac: [], originalID: record.originalID,
               error: error, otherData: [])
    }

    static func append(
        to message: [UInt8], keyName: DNSName, algorithm: DNSName, time: UInt64, mac: [UInt8], originalID: UInt16,
        error: TSIGError, otherData: [UInt8]
    ) -> [UInt8] {
        var out = message
        out += keyName.wire
        out.append16(type)
        out.append16(classAny)
        out.append32(0)
        var rdata = algorithm.wire
        rdata.append48(time)
        rdata.append16(fudge)
        rdata.append16(UInt16(mac.count))
        rdata += mac
        rdata.append16(originalID)
        rdata.append16(error.rawValue)
        rdata.append16(UInt16(otherData.count))
        rdata += otherData
        out.append16(UInt16(rdata.count))
        out += rdata
        let arcount = (UInt16(out[10]) << 8 | UInt16(out[11])) &+ 1
        out[10] = UInt8(arcount >> 8)
        out[11] = UInt8(arcount & 0xFF)
        return out
    }

    /// Verifies a signed response to a request ZoneLink signed with `requestMAC` (a NOTIFY's
    /// acknowledgement): true when its first (or only) message is signed by `key`.
    public static func verifyResponse(_ message: [UInt8], key: TSIGKey, requestMAC: [UInt8], now: UInt64) -> Bool {
        guard case .success(let found?) = find(in: message), found.keyName == key.name, found.algorithm == key.algorithm.name,
              found.error == TSIGError.none.rawValue, found.mac.count == key.algorithm.macLength
        else { return false }
        var data: [UInt8] = []
        data.append16(UInt16(requestMAC.count))
        data += requestMAC
        data += signedData(of: message, found)
        guard constantTimeEqual(key.algorithm.mac(data, secret: key.secret.bytes), found.mac) else { return false }
        return now + UInt64(found.fudge) >= found.timeSigned && now <= found.timeSigned + UInt64(found.fudge)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// A message that cannot be read as DNS, and why (for logs; the client gets FORMERR).
public struct MalformedMessage: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension [UInt8] {
    mutating func append16(_ value: UInt16) {
        append(UInt8(value >> 8))
        append(UInt8(value & 0xFF))
    }

    mutating func append32(_ value: UInt32) {
        append16(UInt16(value >> 16))
        append16(UInt16(value & 0xFFFF))
    }

    mutating func append48(_ value: UInt64) {
        append16(UInt16(value >> 32 & 0xFFFF))
        append32(UInt32(value & 0xFFFF_FFFF))
    }
}
