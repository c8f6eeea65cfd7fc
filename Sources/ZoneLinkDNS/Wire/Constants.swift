/// Record types ZoneLink names in code; any other type passes through as its number.
public struct RRType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = RRType(rawValue: 1)
    public static let ns = RRType(rawValue: 2)
    public static let cname = RRType(rawValue: 5)
    public static let soa = RRType(rawValue: 6)
    public static let ptr = RRType(rawValue: 12)
    public static let mx = RRType(rawValue: 15)
    public static let txt = RRType(rawValue: 16)
    public static let aaaa = RRType(rawValue: 28)
    public static let srv = RRType(rawValue: 33)
    public static let dname = RRType(rawValue: 39)
    public static let opt = RRType(rawValue: 41)
    public static let ds = RRType(rawValue: 43)
    public static let ixfr = RRType(rawValue: 251)
    public static let axfr = RRType(rawValue: 252)
    public static let any = RRType(rawValue: 255)

    public var description: String {
        switch self {
        case .a: "A"
        case .ns: "NS"
        case .cname: "CNAME"
        case .soa: "SOA"
        case .ptr: "PTR"
        case .mx: "MX"
        case .txt: "TXT"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .opt: "OPT"
        case .any: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

public enum DNSClass {
    public static let internet: UInt16 = 1
    public static let any: UInt16 = 255
}

/// Response codes, including the extended ones that travel partly in the OPT record.
public struct RCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let noError = RCode(rawValue: 0)
    public static let formErr = RCode(rawValue: 1)
    public static let servFail = RCode(rawValue: 2)
    public static let nxDomain = RCode(rawValue: 3)
    public static let notImp = RCode(rawValue: 4)
    public static let refused = RCode(rawValue: 5)
    /// RFC 2136 / RFC 8945: not authoritative for the zone, or the TSIG did not verify.
    public static let notAuth = RCode(rawValue: 9)
    /// RFC 6891: an EDNS version this server does not speak.
    public static let badVers = RCode(rawValue: 16)

    public var description: String {
        switch self {
        case .noError: "NOERROR"
        case .formErr: "FORMERR"
        case .servFail: "SERVFAIL"
        case .nxDomain: "NXDOMAIN"
        case .notImp: "NOTIMP"
        case .refused: "REFUSED"
        case .notAuth: "NOTAUTH"
        case .badVers: "BADVERS"
        default: "RCODE\(rawValue)"
        }
    }
}

/// Header flag bits (RFC 1035 section 4.1.1, RFC 4035 for AD and CD).
public enum HeaderFlags {
    public static let qr: UInt16 = 0x8000
    public static let opcodeMask: UInt16 = 0x7800
    public static let aa: UInt16 = 0x0400
    public static let tc: UInt16 = 0x0200
    public static let rd: UInt16 = 0x0100
    public static let ra: UInt16 = 0x0080
    public static let ad: UInt16 = 0x0020
    public static let cd: UInt16 = 0x0010
}

public enum EDNS {
    /// What ZoneLink advertises: the DNS Flag Day 2020 size, which avoids IP fragmentation.
    public static let advertisedPayloadSize: UInt16 = 1232
    /// A query without OPT, or advertising less, gets at most this much (RFC 1035, RFC 6891 6.2.5).
    public static let minimumPayloadSize = 512
    /// The DO bit in the OPT record's TTL field (RFC 3225).
    public static let dnssecOK: UInt32 = 0x8000
}
