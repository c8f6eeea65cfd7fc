/// Writes the response messages of a transfer: records packed into messages that stay under
/// 64 KiB with their TSIG record (RFC 5936 section 2.2), owner names compressed within each
/// message, every message signed when the request was.
public struct TransferMessages {
    /// The most one message's records take, leaving room for the header's question and the
    /// TSIG record (a key name of up to 255 bytes and a 64-byte MAC fit in 1 KiB).
    public static let recordBudget = 65_535 - 1_024

    let id: UInt16
    /// Header flags of every message: QR, AA, the request's opcode and RD.
    let flags: UInt16
    /// The request's question as written (name, type, class), for the first message.
    let question: [UInt8]

    public init(id: UInt16, requestFlags: UInt16, question: [UInt8]) {
        self.id = id
        self.flags = HeaderFlags.qr | HeaderFlags.aa | (requestFlags & (HeaderFlags.opcodeMask | HeaderFlags.rd))
        self.question = question
    }

    /// The records in as few messages as `budget` allows, signed along `chain` when given.
    /// Other than NOERROR, `rcode` goes out without AA and, in practice, without records.
    public func messages(
        _ records: [TransferRecord], chain: inout TSIG.Chain?, time: UInt64, rcode: RCode = .noError, budget: Int = recordBudget
    ) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let flags = rcode == .noError ? self.flags : self.flags & ~HeaderFlags.aa
        var builder = MessageBuilder(id: id, flags: flags, rcode: rcode, question: question)
        for record in records {
            if !builder.append(record, budget: budget) {
                out.append(builder.finish())
                builder = MessageBuilder(id: id, flags: flags, rcode: rcode, question: [])
                // A record alone is always sent, whatever its size (ZoneLink's are small).
                _ = builder.append(record, budget: Int.max)
            }
        }
        out.append(builder.finish())
        guard var signing = chain else { return out }
        out = out.map { signing.sign($0, originalID: id, time: time) }
        chain = signing
        return out
    }

    /// `written` (unsigned messages another request's writer made, with a question of the same
    /// length) as this request's: its ID and flags in every header, its question in the
    /// first, then signed along `chain` when given. The records' compression pointers stay
    /// right because the question is as long. Nil when the questions' lengths differ.
    public func reused(_ written: [[UInt8]], chain: inout TSIG.Chain?, time: UInt64) -> [[UInt8]]? {
        // The question ends where the first record starts: as long as this one, or not reusable.
        guard let first = written.first, first.count >= 12, UInt16(first[4]) << 8 | UInt16(first[5]) == 1,
              Self.questionLength(of: first) == question.count
        else { return nil }
        var out = written
        for index in out.indices {
            out[index].withUnsafeMutableBufferPointer { bytes in
                bytes[0] = UInt8(id >> 8)
                bytes[1] = UInt8(id & 0xFF)
                // NOERROR: only whole zones are reused.
                bytes[2] = UInt8(flags >> 8)
                bytes[3] = UInt8(flags & 0xF0)
            }
        }
        out[0].replaceSubrange(12..<(12 + question.count), with: question)
        guard var signing = chain else { return out }
        out = out.map { signing.sign($0, originalID: id, time: time) }
        chain = signing
        return out
    }

    /// The length of the one question of a message this type wrote (an uncompressed name).
    static func questionLength(of message: [UInt8]) -> Int? {
        var at = 12
        while at < message.count {
            let length = Int(message[at])
            if length == 0 { return at + 1 + 4 <= message.count ? at + 1 + 4 - 12 : nil }
            guard length < 64 else { return nil }
            at += length + 1
        }
        return nil
    }

    /// A response with no records but the question: a refusal, NOTAUTH, FORMERR.
    public func error(_ rcode: RCode) -> [UInt8] {
        var builder = MessageBuilder(id: id, flags: flags & ~HeaderFlags.aa, rcode: rcode, question: question)
        return builder.finish()
    }
}

/// One message being filled: header, optional question, answer records.
struct MessageBuilder {
    private var bytes: [UInt8]
    private var count: UInt16 = 0
    /// Where each name already written starts, for compression pointers (RFC 1035 4.1.4).
    private var offsets: [DNSName: Int] = [:]
    /// The names the record being added put in `offsets`, to take out if it does not fit.
    private var inserted: [DNSName] = []

    init(id: UInt16, flags: UInt16, rcode: RCode, question: [UInt8]) {
        bytes = []
        bytes.reserveCapacity(question.isEmpty ? 4096 : 65_536)
        bytes.append16(id)
        bytes.append16(flags & ~0x000F | (rcode.rawValue & 0x000F))
        bytes.append16(question.isEmpty ? 0 : 1)
        bytes += [0, 0, 0, 0, 0, 0]
        bytes += question
    }

    /// Adds `record` when it fits in `budget` bytes; false (and nothing added) when it does not.
    mutating func append(_ record: TransferRecord, budget: Int) -> Bool {
        let mark = bytes.count
        inserted.removeAll(keepingCapacity: true)
        writeName(record.owner)
        bytes.append16(record.type.rawValue)
        bytes.append16(DNSClass.internet)
        bytes.append32(record.ttl)
        bytes.append16(UInt16(truncatingIfNeeded: record.rdata.count))
        bytes += record.rdata
        if bytes.count > budget || count == UInt16.max {
            bytes.removeSubrange(mark...)
            // Forget only the names this record added: copying the table per record would make
            // a message cost the square of its records.
            for name in inserted { offsets[name] = nil }
            return false
        }
        count += 1
        return true
    }

    mutating func finish() -> [UInt8] {
        bytes[6] = UInt8(count >> 8)
        bytes[7] = UInt8(count & 0xFF)
        return bytes
    }

    /// The name, its longest suffix already in the message replaced by a pointer.
    private mutating func writeName(_ name: DNSName) {
        var suffix = name
        var position = 0
        while !suffix.isRoot {
            if let at = offsets[suffix] {
                bytes += name.wire[0..<position]
                bytes.append16(0xC000 | UInt16(at))
                registerLabels(of: name, upTo: position, startingAt: bytes.count - position - 2)
                return
            }
            position += Int(name.wire[position]) + 1
            suffix = suffix.parent
        }
        let start = bytes.count
        bytes += name.wire
        registerLabels(of: name, upTo: name.wire.count - 1, startingAt: start)
    }

    /// Notes where the suffixes of `name` that start before `end` were written.
    private mutating func registerLabels(of name: DNSName, upTo end: Int, startingAt start: Int) {
        var position = 0
        var suffix = name
        while position < end {
            let at = start + position
            if at < 0x4000, offsets[suffix] == nil {
                offsets[suffix] = at
                inserted.append(suffix)
            }
            position += Int(name.wire[position]) + 1
            suffix = suffix.parent
        }
    }
}
