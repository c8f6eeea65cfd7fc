/// The NAT ports of one (provider VPC, protocol, NAT address): a bit per port of the range,
/// handed out next-fit.
///
/// Next-fit (continue after the last port given, wrapping) rather than lowest-free, so a port
/// just freed is not reused at once while the provider may still hold the old connection in
/// TIME_WAIT; it is reused only after the rest of the range has been given out. A bitmap of
/// 64-bit words skips 64 used ports per step, so even a nearly full range of 64 512 ports is
/// searched in about a thousand steps, and allocating never allocates memory.
struct PortPool: Sendable {
    private let lowerBound: Int
    /// Number of ports in the range.
    let size: Int
    /// Bit `i` set: port `lowerBound + i` is in use. Bits past `size` in the last word are set
    /// once, so the search never hands them out.
    private var used: [UInt64]
    private(set) var inUse = 0
    /// Offset of the first port to try next.
    private var cursor = 0

    init(_ range: ClosedRange<UInt16>) {
        lowerBound = Int(range.lowerBound)
        size = Int(range.upperBound) - lowerBound + 1
        let words = (size + 63) / 64
        used = Array(repeating: 0, count: words)
        let tail = size % 64
        if tail != 0 { used[words - 1] = UInt64.max << UInt64(tail) }
    }

    var isExhausted: Bool { inUse == size }

    /// The next free port at or after the cursor (wrapping), now marked in use; nil when full.
    mutating func allocate() -> UInt16? {
        guard inUse < size else { return nil }
        var word = cursor >> 6
        var free = ~used[word] & (UInt64.max << UInt64(cursor & 63))
        while free == 0 {  // ends: some bit is free, at the latest below the cursor after wrapping
            word = word + 1 == used.count ? 0 : word + 1
            free = ~used[word]
        }
        let offset = word << 6 | free.trailingZeroBitCount
        used[word] |= 1 << UInt64(offset & 63)
        inUse += 1
        cursor = offset + 1 == size ? 0 : offset + 1
        return UInt16(lowerBound + offset)
    }

    mutating func release(_ port: UInt16) {
        let offset = Int(port) - lowerBound
        precondition(offset >= 0 && offset < size, "NAT port \(port) is outside the pool's range")
        let bit: UInt64 = 1 << UInt64(offset & 63)
        guard used[offset >> 6] & bit != 0 else { return }
        used[offset >> 6] &= ~bit
        inUse -= 1
    }

    func contains(_ port: UInt16) -> Bool {
        let offset = Int(port) - lowerBound
        guard offset >= 0 && offset < size else { return false }
        return used[offset >> 6] & (1 << UInt64(offset & 63)) != 0
    }
}
