import Glibc
import NIOCore
import ZoneLinkCore

/// Responses the responder already wrote, kept per (listener, client zone, question, EDNS
/// shape) and handed out again with the new query's ID, RD and CD bits and question bytes
/// (its case preserved): the answer path of a repeated question without parsing into values,
/// deciding or encoding.
///
/// Everything a prepared response depends on is in its key or invalidates the table:
/// - the key: the listener (its VPC is the view, its zone or the source's vSwitch the client's
///   zone), the client's zone, the question name folded to lower case, type and class, and the
///   EDNS shape (present or not, DO, the size limit that decides TC);
/// - `follow(_:)`: a new responder (catalog generation, health, forwarder) or a moved SOA serial
///   (`ClientSerials.changes`) empties the table;
/// - only what `Responder.respond` says is preparable is kept: an engine answer that does
///   not depend on the source address (no Client Subnet, no refusal that forwarding would have
///   answered for another source). Everything else takes the ordinary path every time.
///
/// Anything the quick reading below does not recognise with certainty (another opcode,
/// a section that should be empty, an EDNS version, any option it does not know to be inert,
/// a Client Subnet, a TSIG record, a transfer) goes through `Responder.respond`, whose parser
/// stays the one judge of malformed input; so the bytes out are always the responder's.
///
/// Memory is bounded (`docs/dns.md`): `capacity` entries (for the servers' tables, sized from the
/// catalog: `catalogCapacity(_:)`), each question in one of two slots
/// picked by its hash (when both are taken a new entry replaces one of them, so colliding
/// questions cost a miss, never a chain or a search), and at most
/// `byteBudget` bytes of responses; a response larger than `largestResponse` is not kept.
/// The hash is seeded per table, so a client cannot aim its questions at one slot of
/// every server.
///
/// Not Sendable: one per UDP worker thread, touched by nothing else, so a hit shares no memory
/// with another thread.
public final class PreparedAnswers {
    /// Entries per table (per UDP worker) at least; a table sized from the catalog may hold more.
    public static let defaultCapacity = 16_384
    /// Bytes of responses per table of `defaultCapacity` entries (256 per entry).
    public static let defaultByteBudget = 4 << 20
    /// The most entries a table sized from the catalog holds: 23 MB of slots (88 bytes each) per worker
    /// before any response is kept, and at most 64 MiB of responses (256 bytes per entry).
    public static let largestCatalogCapacity = 262_144
    /// Bytes of responses a table sized from the catalog may keep per entry of its capacity (a
    /// typical response is 60 to 150 bytes).
    public static let byteBudgetPerEntry = defaultByteBudget / defaultCapacity
    /// The largest response kept: the size ZoneLink advertises in EDNS.
    public static let largestResponse = Int(EDNS.advertisedPayloadSize)
    /// False when the environment says `ZONELINK_PREPARED_ANSWERS=0` (`docs/dns.md`): every
    /// question then takes the full path, to rule the prepared path out when diagnosing, and
    /// to measure what it saves (`Benchmarks/dns`).
    public static let enabled = getenv("ZONELINK_PREPARED_ANSWERS").map { String(cString: $0) != "0" } ?? true

    private struct Entry {
        var hash: UInt64
        /// The question as the key: lower-case name, then type and class (wire order).
        var question: [UInt8]
        var limit: Int
        var ednsShape: UInt8
        var listener: ListenerContext
        var clientZone: String?
        /// The response with RD and CD clear; ID and question are overwritten on every hit.
        var response: [UInt8]
    }

    private var slots: [Entry?]
    private var mask: Int
    private var byteBudget: Int
    /// Whether the table takes its size from each new engine's catalog (`catalogCapacity(_:)`).
    private let followsCatalogSize: Bool
    private var bytes = 0
    private let seed: UInt64
    /// What the table's responses were prepared from.
    private var engine: AnswerEngine?
    private var health = ZoneHealth.allHealthy
    private var forwarder: ObjectIdentifier?
    private var serialChanges = 0
    /// The question of the datagram being answered, folded to lower case (a name is at most
    /// 255 bytes, then type and class).
    private var scratch = [UInt8](repeating: 0, count: DNSName.maxWireLength + 4)

    /// Hits and misses since the table was made (for tests and the benchmark's notes).
    public private(set) var hits = 0
    public private(set) var misses = 0

    /// A table of fixed size; `capacity` is rounded up to a power of two.
    public init(capacity: Int = defaultCapacity, byteBudget: Int = defaultByteBudget) {
        let size = Self.powerOfTwo(atLeast: capacity)
        self.slots = Array(repeating: nil, count: size)
        self.mask = size - 1
        self.byteBudget = byteBudget
        self.followsCatalogSize = false
        self.seed = UInt64.random(in: 1...UInt64.max)
    }

    /// A table that takes its size from the catalog of each engine it follows
    /// (`catalogCapacity(_:)`), with `byteBudgetPerEntry` bytes of responses per entry: what the
    /// servers use, so that a large catalog's questions are not forever pushing each other out
    /// of a table made for a small one.
    public static func sizedFromCatalog() -> PreparedAnswers { PreparedAnswers(sizedFromCatalog: ()) }

    private init(sizedFromCatalog: Void) {
        self.slots = Array(repeating: nil, count: Self.defaultCapacity)
        self.mask = Self.defaultCapacity - 1
        self.byteBudget = Self.defaultByteBudget
        self.followsCatalogSize = true
        self.seed = UInt64.random(in: 1...UInt64.max)
    }

    /// The entries a table sized from `catalog` has: the power of two at or above the number of
    /// names the catalog generates (the apex, each service, each endpoint and each of its ENIs),
    /// so every name can be kept for one question type of one client zone; at least
    /// `defaultCapacity`, at most `largestCatalogCapacity`.
    public static func catalogCapacity(_ catalog: Catalog) -> Int {
        var names = 1 + catalog.services.count
        for endpoint in catalog.endpoints { names += 1 + endpoint.enis.count }
        return min(largestCatalogCapacity, powerOfTwo(atLeast: max(defaultCapacity, names)))
    }

    private static func powerOfTwo(atLeast count: Int) -> Int {
        var size = 1
        while size < max(1, count) { size <<= 1 }
        return size
    }

    /// Entries the table can hold.
    public var capacity: Int { slots.count }

    /// The number of responses kept.
    public var count: Int { slots.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// Answers from now on come from `responder`: when it is not the one the table was
    /// prepared from (another engine, health or forwarder) or a client serial moved since, the
    /// table is emptied. Cheap when nothing changed (a pointer, a set compared by identity
    /// first, one atomic load): the UDP worker calls it once per batch.
    public func follow(_ responder: Responder) {
        let forwarderID = responder.forwarder.map { ObjectIdentifier($0) }
        let serialChanges = responder.clientSerials?.changes ?? 0
        if engine !== responder.engine || health != responder.health || forwarder != forwarderID
            || serialChanges != self.serialChanges
        {
            let size = followsCatalogSize && engine !== responder.engine ? Self.catalogCapacity(responder.engine.catalog) : slots.count
            if size != slots.count {
                slots = Array(repeating: nil, count: size)
                mask = size - 1
                byteBudget = size * Self.byteBudgetPerEntry
                bytes = 0
            } else {
                clear()
            }
            engine = responder.engine
            health = responder.health
            forwarder = forwarderID
            self.serialChanges = serialChanges
        }
    }

    /// Empties the table.
    public func clear() {
        guard bytes > 0 || slots.contains(where: { $0 != nil }) else { return }
        for i in slots.indices { slots[i] = nil }
        bytes = 0
    }

    /// Appends the response to `message` to `output`: the prepared one when there is one,
    /// else `responder`'s (kept when it may be). `responder` must be the one last passed to
    /// `follow(_:)`.
    public func respond(
        to message: UnsafeRawBufferPointer, listener: ListenerContext, source: IPv4Address?,
        transport: Responder.Transport, responder: Responder, into output: inout ByteBuffer
    ) -> Responder.Outcome {
        guard let key = readKey(message, transport: transport) else {
            return responder.respond(to: message, listener: listener, source: source, transport: transport, into: &output)
        }
        let clientZone = listener.zone ?? ZoneAffinity.clientZone(
            listenerZone: nil, vpc: listener.vpc.flatMap { responder.engine.catalog.vpc($0) }, source: source,
            clientSubnet: nil, trustedForwarders: []).zone
        var hash = key.hash
        for byte in (clientZone ?? "").utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        // Two places a question may be kept, from two parts of its hash: two questions rarely
        // share both, so a full table keeps most of what is asked again.
        let first = Int(truncatingIfNeeded: hash ^ hash >> 29) & mask
        let second = Int(truncatingIfNeeded: hash >> 32 ^ hash >> 13) & mask

        if let found = matches(first, hash: hash, key: key, listener: listener, clientZone: clientZone) ? first
            : matches(second, hash: hash, key: key, listener: listener, clientZone: clientZone) ? second : nil
        {
            hits += 1
            let start = output.writerIndex
            output.writeBytes(slots[found].unsafelyUnwrapped.response)
            let flags: UInt16 = output.getInteger(at: start + 2)!
            let echoed = UInt16(message[2]) << 8 | UInt16(message[3])
            output.setInteger(flags | echoed & (HeaderFlags.rd | HeaderFlags.cd), at: start + 2)
            output.setBytes(UnsafeRawBufferPointer(rebasing: message[0..<2]), at: start)
            output.setBytes(UnsafeRawBufferPointer(rebasing: message[12..<(12 + key.nameLength)]), at: start + 12)
            return .answered
        }

        misses += 1
        let start = output.writerIndex
        var preparable = false
        let outcome = responder.respond(
            to: message, listener: listener, source: source, transport: transport, into: &output, preparable: &preparable)
        let length = output.writerIndex - start
        guard preparable, case .answered = outcome, length <= Self.largestResponse, length >= 12 + key.questionLength
        else { return outcome }
        guard var response = output.getBytes(at: start, length: length) else { return outcome }
        response[2] &= ~UInt8(truncatingIfNeeded: (HeaderFlags.rd | HeaderFlags.cd) >> 8)
        response[3] &= ~UInt8(truncatingIfNeeded: HeaderFlags.rd | HeaderFlags.cd)
        let entry = Entry(
            hash: hash, question: Array(scratch[0..<key.questionLength]), limit: key.limit, ednsShape: key.ednsShape,
            listener: listener, clientZone: clientZone, response: response)
        let slot = slots[first] == nil ? first : slots[second] == nil ? second : misses & 1 == 0 ? first : second
        if let old = slots[slot] { bytes -= old.response.count + old.question.count }
        let size = response.count + entry.question.count
        if bytes + size > byteBudget { clear() }
        slots[slot] = entry
        bytes += size
        return outcome
    }

    /// True when `slot` holds this question for this listener and client zone.
    @inline(__always)
    private func matches(_ slot: Int, hash: UInt64, key: Key, listener: ListenerContext, clientZone: String?) -> Bool {
        guard let entry = slots[slot], entry.hash == hash, entry.limit == key.limit, entry.ednsShape == key.ednsShape,
              entry.question.count == key.questionLength, entry.clientZone == clientZone, entry.listener == listener
        else { return false }
        return entry.question.withUnsafeBytes { stored in
            scratch.withUnsafeBytes { memcmp(stored.baseAddress!, $0.baseAddress!, key.questionLength) == 0 }
        }
    }

    /// What the key of a preparable question needs from the message.
    private struct Key {
        var hash: UInt64
        var nameLength: Int
        var questionLength: Int
        var limit: Int
        /// 0: no EDNS; 1: EDNS; 3: EDNS with DO.
        var ednsShape: UInt8
    }

    /// Reads the header, the question (folded into `scratch` and hashed on the way) and an OPT
    /// record, accepting only the plainest query: QR clear, opcode QUERY, one question, empty
    /// answer and authority sections, no additional record but an OPT of version 0 owned by the
    /// root whose options (if any) are well-formed and not a Client Subnet. Nil: let the
    /// responder judge it.
    private func readKey(_ message: UnsafeRawBufferPointer, transport: Responder.Transport) -> Key? {
        let count = message.count
        guard count >= 17 else { return nil }
        @inline(__always) func read16(_ at: Int) -> Int { Int(message[at]) << 8 | Int(message[at + 1]) }
        let flags = read16(2)
        guard flags & Int(HeaderFlags.qr | HeaderFlags.opcodeMask) == 0, read16(4) == 1, read16(6) == 0, read16(8) == 0
        else { return nil }
        let additional = read16(10)
        guard additional <= 1 else { return nil }

        var hash = seed
        var offset = 12
        while true {
            let length = Int(message[offset])
            if length == 0 { break }
            guard length <= 63, offset + 1 + length < count, offset + 1 + length - 12 < DNSName.maxWireLength else { return nil }
            scratch[offset - 12] = UInt8(length)
            hash = (hash ^ UInt64(length)) &* 0x100_0000_01B3
            for i in (offset + 1)...(offset + length) {
                let byte = DNSName.lower(message[i])
                scratch[i - 12] = byte
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
            }
            offset += length + 1
        }
        let nameLength = offset + 1 - 12
        guard offset + 5 <= count else { return nil }
        let type = read16(offset + 1)
        // OPT is malformed as a question; TSIG, IXFR, AXFR and MAILB/MAILA go to their own paths.
        guard type != Int(RRType.opt.rawValue), !(249...254).contains(type) else { return nil }
        for i in 0..<5 {
            let byte = message[offset + i]
            scratch[nameLength - 1 + i] = byte
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        let questionEnd = offset + 5
        var limit = transport == .tcp ? 65535 : EDNS.minimumPayloadSize
        var shape: UInt8 = 0
        if additional == 1 {
            // Root owner, type OPT, payload size, extended rcode, version 0, flags, options.
            guard questionEnd + 11 <= count, message[questionEnd] == 0, read16(questionEnd + 1) == Int(RRType.opt.rawValue),
                  message[questionEnd + 6] == 0
            else { return nil }
            let optionsStart = questionEnd + 11
            let optionsEnd = optionsStart + read16(questionEnd + 9)
            guard optionsEnd <= count else { return nil }
            var option = optionsStart
            while option < optionsEnd {
                guard option + 4 <= optionsEnd, read16(option) != Int(ClientSubnet.optionCode) else { return nil }
                option += 4 + read16(option + 2)
            }
            guard option == optionsEnd else { return nil }
            if transport == .udp {
                limit = max(EDNS.minimumPayloadSize, min(read16(questionEnd + 3), Int(EDNS.advertisedPayloadSize)))
            }
            shape = message[questionEnd + 7] & 0x80 != 0 ? 3 : 1
        }
        hash = (hash ^ UInt64(limit)) &* 0x100_0000_01B3
        hash = (hash ^ UInt64(shape)) &* 0x100_0000_01B3
        return Key(hash: hash, nameLength: nameLength, questionLength: nameLength + 4, limit: limit, ednsShape: shape)
    }
}
