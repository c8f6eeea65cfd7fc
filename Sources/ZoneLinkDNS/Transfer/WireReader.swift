/// Bounds-checked reading of a whole DNS message from untrusted bytes: every read returns nil
/// past the end, names follow compression pointers only backwards and at most 128 times.
///
/// The query parser reads only what answering needs; transfers need every section (the IXFR
/// SOA in authority, the TSIG record last in additional), so they read with this.
struct WireReader {
    let bytes: [UInt8]
    var offset: Int

    init(_ bytes: [UInt8], at offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func u8() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() -> UInt16? {
        guard offset + 2 <= bytes.count else { return nil }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func u32() -> UInt32? {
        guard let high = u16(), let low = u16() else { return nil }
        return UInt32(high) << 16 | UInt32(low)
    }

    mutating func u48() -> UInt64? {
        guard let high = u16(), let low = u32() else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, offset + count <= bytes.count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// A name, decompressed and folded to lower case; the reader moves past it as written.
    mutating func name() -> DNSName? {
        var wire: [UInt8] = []
        var position = offset
        var end: Int?
        var jumps = 0
        while true {
            guard position < bytes.count else { return nil }
            let length = Int(bytes[position])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    wire.append(0)
                    offset = end ?? position + 1
                    return DNSName(validatedWire: wire)
                }
                guard position + 1 + length <= bytes.count, wire.count + length + 2 <= DNSName.maxWireLength else { return nil }
                wire += bytes[position...(position + length)]
                position += length + 1
            case 0xC0:
                guard position + 1 < bytes.count else { return nil }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                // Only backwards, and a bounded number of times: no loops.
                guard target < position, jumps < 128 else { return nil }
                jumps += 1
                if end == nil { end = position + 2 }
                position = target
            default:
                return nil
            }
        }
    }

    /// Moves past one resource record, returning its type and where its data lies.
    mutating func record() -> (owner: DNSName, type: UInt16, rdata: Range<Int>)? {
        guard let owner = name(), let type = u16(), u16() != nil, u32() != nil, let length = u16() else { return nil }
        let start = offset
        guard offset + Int(length) <= bytes.count else { return nil }
        offset += Int(length)
        return (owner, type, start..<(start + Int(length)))
    }
}
