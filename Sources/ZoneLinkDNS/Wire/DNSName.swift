import Glibc

/// A domain name in wire form (RFC 1035 section 3.1): length-prefixed labels ending in the
/// root label, uncompressed, folded to lower case.
///
/// Lower case is the identity used for lookups (names compare case-insensitively, RFC 4343);
/// the client's own spelling is echoed from the question, never stored here.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public private(set) var wire: [UInt8]

    /// Hashes the bytes in one call; the synthesised conformance would feed them one at a time.
    public func hash(into hasher: inout Hasher) {
        wire.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool { lhs.wire == rhs.wire }

    /// True when the last `apex.wire.count` bytes of this name are `apex` and start at a label:
    /// `isSubdomain(of:)` without allocating, for the hot path.
    @inline(__always)
    func endsWith(_ apex: DNSName) -> Bool {
        let start = wire.count - apex.wire.count
        guard start >= 0 else { return false }
        var i = 0
        while i < start { i += Int(wire[i]) + 1 }
        return i == start && wire.withUnsafeBufferPointer { mine in
            apex.wire.withUnsafeBufferPointer { theirs in
                memcmp(mine.baseAddress! + start, theirs.baseAddress!, theirs.count) == 0
            }
        }
    }

    public static let root = DNSName(uncheckedWire: [0])
    /// Longest name on the wire, counting length bytes and the root label.
    public static let maxWireLength = 255

    init(uncheckedWire wire: [UInt8]) { self.wire = wire }

    /// Parses presentation form (`www.example.internal`, trailing dot optional). No escapes:
    /// ZoneLink's own names are hostnames; static zones come through ldns.
    public init?(_ text: some StringProtocol) {
        var wire: [UInt8] = []
        wire.reserveCapacity(text.utf8.count + 2)
        if text != "." && !text.isEmpty {
            var labels = text.split(separator: ".", omittingEmptySubsequences: false)
            if labels.last == "" { labels.removeLast() }
            for label in labels {
                let bytes = label.utf8
                guard (1...63).contains(bytes.count) else { return nil }
                wire.append(UInt8(bytes.count))
                wire.append(contentsOf: bytes.map(Self.lower))
            }
        }
        wire.append(0)
        guard wire.count <= Self.maxWireLength else { return nil }
        self.wire = wire
    }

    /// From wire bytes already validated by the parser (lengths consistent, ≤ 255 bytes).
    public init(validatedWire bytes: some Collection<UInt8>) {
        var wire = Array(bytes)
        var i = 0
        while wire[i] != 0 {
            let length = Int(wire[i])
            for j in (i + 1)...(i + length) { wire[j] = Self.lower(wire[j]) }
            i += length + 1
        }
        self.wire = wire
    }

    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= 65 && byte <= 90 ? byte | 0x20 : byte
    }

    public var isRoot: Bool { wire.count == 1 }

    public var labelCount: Int {
        var count = 0
        var i = 0
        while wire[i] != 0 { count += 1; i += Int(wire[i]) + 1 }
        return count
    }

    /// The name without its first label; the root's parent is the root.
    public var parent: DNSName {
        guard !isRoot else { return self }
        return DNSName(uncheckedWire: Array(wire[(Int(wire[0]) + 1)...]))
    }

    /// This name with `label` in front.
    public func prepending(_ label: some Collection<UInt8>) -> DNSName {
        DNSName(uncheckedWire: [UInt8(label.count)] + label.map(Self.lower) + wire)
    }

    /// This name with one label in front, written as the concatenation of `parts` (folded to
    /// lower case); nil past 63 bytes of label or 255 of name. One allocation.
    func prepending(label parts: String.UTF8View...) -> DNSName? {
        let length = parts.reduce(0) { $0 + $1.count }
        guard (1...63).contains(length), wire.count + length + 1 <= Self.maxWireLength else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(wire.count + length + 1)
        bytes.append(UInt8(length))
        for part in parts { for byte in part { bytes.append(Self.lower(byte)) } }
        bytes.append(contentsOf: wire)
        return DNSName(uncheckedWire: bytes)
    }

    /// True when self equals `other` or lies below it.
    public func isSubdomain(of other: DNSName) -> Bool {
        guard wire.count >= other.wire.count else { return false }
        var i = 0
        while wire.count - i > other.wire.count { i += Int(wire[i]) + 1 }
        return wire.count - i == other.wire.count && wire[i...].elementsEqual(other.wire)
    }

    /// Presentation form with a trailing dot; bytes outside printable ASCII as `\DDD`.
    public var description: String {
        guard !isRoot else { return "." }
        var text = ""
        var i = 0
        while wire[i] != 0 {
            let length = Int(wire[i])
            for byte in wire[(i + 1)...(i + length)] {
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: ";"), UInt8(ascii: "("), UInt8(ascii: ")"):
                    text += "\\" + String(UnicodeScalar(byte))
                case 33...126:
                    text.unicodeScalars.append(UnicodeScalar(byte))
                default:
                    let digits = String(byte)
                    text += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
                }
            }
            text += "."
            i += length + 1
        }
        return text
    }
}
