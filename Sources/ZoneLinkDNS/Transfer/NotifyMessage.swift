/// NOTIFY (RFC 1996) as ZoneLink sends it to a secondary, and how its acknowledgement is
/// recognised. Pure.
public enum NotifyMessage {
    /// The NOTIFY opcode (RFC 1996 section 3.1).
    public static let opcode: UInt16 = 4

    /// A NOTIFY for `zone` carrying its current SOA (a hint, section 3.7), signed with `key`.
    public static func signed(id: UInt16, zone: DNSName, soa: TransferRecord, key: TSIGKey, time: UInt64) -> (message: [UInt8], mac: [UInt8]) {
        var message: [UInt8] = []
        message.append16(id)
        message.append16(opcode << 11 | HeaderFlags.aa)
        message += [0, 1, 0, 1, 0, 0, 0, 0]
        message += zone.wire
        message.append16(RRType.soa.rawValue)
        message.append16(DNSClass.internet)
        message += [0xC0, 12]
        message.append16(RRType.soa.rawValue)
        message.append16(DNSClass.internet)
        message.append32(soa.ttl)
        message.append16(UInt16(soa.rdata.count))
        message += soa.rdata
        return TSIG.signRequest(message, key: key, time: time)
    }

    /// True when `response` acknowledges the NOTIFY `id` (QR, opcode NOTIFY, NOERROR) and is
    /// signed by `key` over `requestMAC`: an unsigned or forged answer does not stop retries.
    public static func isAcknowledgement(_ response: [UInt8], id: UInt16, key: TSIGKey, requestMAC: [UInt8], now: UInt64) -> Bool {
        guard response.count >= 12 else { return false }
        let flags = UInt16(response[2]) << 8 | UInt16(response[3])
        guard UInt16(response[0]) << 8 | UInt16(response[1]) == id, flags & HeaderFlags.qr != 0,
              (flags & HeaderFlags.opcodeMask) >> 11 == opcode, flags & 0x000F == 0
        else { return false }
        return TSIG.verifyResponse(response, key: key, requestMAC: requestMAC, now: now)
    }

    /// Seconds before the `attempt`-th retry (1, 2, 4, … capped at 60): a secondary that is
    /// down is asked about once a minute until it answers or a newer change replaces the NOTIFY.
    public static func backoff(attempt: Int) -> Int {
        min(60, 1 << min(attempt, 6))
    }
}
