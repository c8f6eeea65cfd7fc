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
/// The hit path is the hot path of the whole server (`Benchmarks/dns`), so the table is laid
/// out for it: slots are plain values (no reference counting while comparing), each entry's
/// question and response sit in one allocation of their own, and the listener and client zone
/// of a key are reduced to a small number (`Context`) looked up once per change of asker.
///
/// Not Sendable: one per UDP worker thread, touched by nothing else, so a hit shares no memory
/// with another thread.
public final class PreparedAnswers {
    /// Entries per table (per UDP worker) at least: room for the working set of a busy view
    /// (about 10,000 distinct questions in `Benchmarks/dns`) with few collisions between the
    /// two places a question may go. A table sized from the catalog may hold more.
    public static let defaultCapacity = 32_768
    /// The most entries a table sized from the catalog holds: 8 MiB of slots (32 bytes each)
    /// per worker before any response is kept.
    public static let largestCatalogCapacity = 262_144
    /// Bytes of responses a table may keep per entry of its capacity (a typical response is
    /// 60 to 150 bytes, and its question 30 to 80).
    public static let byteBudgetPerEntry = 256
    /// Bytes of responses per table of `defaultCapacity` entries: 8 MiB.
    public static let defaultByteBudget = defaultCapacity * byteBudgetPerEntry
    /// The largest response kept: the size ZoneLink advertises in EDNS.
    public static let largestResponse = Int(EDNS.advertisedPayloadSize)
    /// Askers (listener and client zone pairs) a table tells apart before it starts afresh: a
    /// host has a handful of listeners and each view a few zones.
    static let contextLimit = 1_024
    /// False when the environment says `ZONELINK_PREPARED_ANSWERS=0` (`docs/dns.md`): every
    /// question then takes the full path, to rule the prepared path out when diagnosing, and
    /// to measure what it saves (`Benchmarks/dns`).
    public static let enabled = getenv("ZONELINK_PREPARED_ANSWERS").map { String(cString: $0) != "0" } ?? true

    /// One kept response. `bytes` holds the question as the key (lower-case name, then type and
    /// class in wire order) followed by the response with RD and CD clear, whose ID and
    /// question are overwritten on every hit; nil: the slot is empty.
    private struct Slot {
        var hash: UInt64 = 0
        var bytes: UnsafeMutableRawPointer? = nil
        var questionLength: UInt16 = 0
        var responseLength: UInt16 = 0
        var limit: UInt16 = 0
        var ednsShape: UInt8 = 0
        var context: UInt16 = 0
    }

    /// Who asked: what a response depends on besides the question.
    private struct Context: Equatable {
        var listener: ListenerContext
        var clientZone: String?
    }

    private var slots: UnsafeMutablePointer<Slot>
    /// Entries the table can hold.
    public private(set) var capacity: Int
    private var mask: Int
    private var byteBudget: Int
    /// Whether the table takes its size from each new engine's catalog (`catalogCapacity(_:)`).
    private let followsCatalogSize: Bool
    private var bytes = 0
    private let seed: UInt64
    private var contexts: [Context] = []
    private var lastContext = -1
    /// What the table's responses were prepared from.
    private var engine: AnswerEngine?
    private var health = ZoneHealth.allHealthy
    private var forwarder: ObjectIdentifier?
    private var serialChanges = 0
    /// The question of the datagram being answered, folded to lower case (a name is at most
    /// 255 bytes, then type and class, and room to write it eight bytes at a time).
    private let scratch: UnsafeMutableRawPointer

    /// Hits and misses since the table was made (for tests and the benchmark's notes).
    public private(set) var hits = 0
    public private(set) var misses = 0

    /// A table of fixed size; `capacity` is rounded up to a power of two.
    public convenience init(capacity: Int = defaultCapacity, byteBudget: Int = defaultByteBudget) {
        self.init(capacity: capacity, byteBudget: byteBudget, followsCatalogSize: false)
    }

    /// A table that takes its size from the catalog of each engine it follows
    /// (`catalogCapacity(_:)`), with `byteBudgetPerEntry` bytes of responses per entry: what the
    /// servers use, so that a large catalog's questions are not forever pushing each other out
    /// of a table made for a small one.
    public static func sizedFromCatalog() -> PreparedAnswers {
        PreparedAnswers(capacity: defaultCapacity, byteBudget: defaultByteBudget, followsCatalogSize: true)
    }

    private init(capacity: Int, byteBudget: Int, followsCatalogSize: Bool) {
        let size = Self.powerOfTwo(atLeast: capacity)
        self.slots = Self.emptySlots(size)
        self.capacity = size
        self.mask = size - 1
        self.byteBudget = byteBudget
        self.followsCatalogSize = followsCatalogSize
        self.seed = UInt64.random(in: 1...UInt64.max)
        self.scratch = .allocate(byteCount: DNSName.maxWireLength + 4 + 8, alignment: 8)
    }

    deinit {
        for i in 0..<capacity { slots[i].bytes?.deallocate() }
        slots.deallocate()
        scratch.deallocate()
    }

    /// The entries a table sized from `catalog` has: the power of two at or above twice the
    /// number of names the catalog generates (the apex, each service, each endpoint and each of
    /// its ENIs), so every name can be kept for two questions (A and AAAA, or two client
    /// zones) with room to spare for the two places each may go; at least `defaultCapacity`,
    /// at most `largestCatalogCapacity`.
    public static func catalogCapacity(_ catalog: Catalog) -> Int {
        var names = 1 + catalog.services.count
        for endpoint in catalog.endpoints { names += 1 + endpoint.enis.count }
        return min(largestCatalogCapacity, powerOfTwo(atLeast: max(defaultCapacity, 2 * names)))
    }

    private static func powerOfTwo(atLeast count: Int) -> Int {
        var size = 1
        while size < max(1, count) { size <<= 1 }
        return size
    }

    private static func emptySlots(_ count: Int) -> UnsafeMutablePointer<Slot> {
        let slots = UnsafeMutablePointer<Slot>.allocate(capacity: count)
        slots.initialize(repeating: Slot(), count: count)
        return slots
    }

    /// The number of responses kept.
    public var count: Int { (0..<capacity).reduce(0) { $0 + (slots[$1].bytes == nil ? 0 : 1) } }

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
            let size = followsCatalogSize && engine !== responder.engine ? Self.catalogCapacity(responder.engine.catalog) : capacity
            clear()
            if size != capacity {
                slots.deallocate()
                slots = Self.emptySlots(size)
                capacity = size
                mask = size - 1
                byteBudget = size * Self.byteBudgetPerEntry
            }
            engine = responder.engine
            health = responder.health
            forwarder = forwarderID
            self.serialChanges = serialChanges
        }
    }

    /// Empties the table, and forgets who asked.
    public func clear() {
        clearSlots()
        contexts.removeAll(keepingCapacity: true)
        lastContext = -1
    }

    /// Frees every kept response; the askers' numbers stay valid.
    private func clearSlots() {
        guard bytes > 0 else { return }
        for i in 0..<capacity where slots[i].bytes != nil {
            slots[i].bytes.unsafelyUnwrapped.deallocate()
            slots[i] = Slot()
        }
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
        let context = self.context(listener, clientZone)
        let hash = Self.mix(key.hash, UInt64(context))
        // Two places a question may be kept, from two parts of its hash: two questions rarely
        // share both, so a full table keeps most of what is asked again.
        let (first, second) = places(hash)

        let found = matches(first, hash: hash, key: key, context: context) ? first
            : matches(second, hash: hash, key: key, context: context) ? second : -1
        if found >= 0 {
            hits += 1
            let slot = slots[found]
            let response = UnsafeRawPointer(slot.bytes.unsafelyUnwrapped + Int(slot.questionLength))
            let length = Int(slot.responseLength)
            let query = message.baseAddress.unsafelyUnwrapped
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
                let written = out.baseAddress.unsafelyUnwrapped
                written.copyMemory(from: response, byteCount: length)
                // The client's ID, its RD and CD bits and its question as sent (case and all).
                written.copyMemory(from: query, byteCount: 2)
                let echoed = written.assumingMemoryBound(to: UInt8.self)
                let asked = query.assumingMemoryBound(to: UInt8.self)
                echoed[2] |= asked[2] & UInt8(truncatingIfNeeded: (HeaderFlags.rd | HeaderFlags.cd) >> 8)
                echoed[3] |= asked[3] & UInt8(truncatingIfNeeded: HeaderFlags.rd | HeaderFlags.cd)
                (written + 12).copyMemory(from: query + 12, byteCount: key.nameLength)
                return length
            }
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
        keep(output, at: start, length: length, in: room(first, second), hash: hash, key: key, context: context)
        return outcome
    }

    /// The two slots a question with `hash` may be kept in.
    @inline(__always)
    private func places(_ hash: UInt64) -> (Int, Int) {
        (Int(truncatingIfNeeded: hash ^ hash >> 29) & mask, Int(truncatingIfNeeded: hash >> 32 ^ hash >> 13) & mask)
    }

    /// Most entries moved to make room for one (cuckoo hashing's bound on a chain of moves).
    static let largestMove = 8

    /// A slot for a new entry whose places are `first` and `second`: an empty one of the two,
    /// else one emptied by moving its entry to that entry's other place, and so on down a
    /// chain of at most `largestMove` entries; when the chain finds no empty slot, the entry
    /// at its start gives way. Without the moves, a table a third full of distinct questions (a
    /// 100,000-endpoint catalog asked each of its names in turn) dropped and prepared again
    /// about one question in ten: both places of a tenth of them are taken.
    private func room(_ first: Int, _ second: Int) -> Int {
        if slots[first].bytes == nil { return first }
        if slots[second].bytes == nil { return second }
        // A chain through the entry at `first` (or `second`, taken in turns); the entry of the
        // last slot whose other place is empty moves there, then each before it moves up.
        var chain = [misses & 1 == 0 ? first : second]
        while chain.count <= Self.largestMove {
            let here = chain[chain.count - 1]
            let (a, b) = places(slots[here].hash)
            let other = a == here ? b : a
            if slots[other].bytes == nil {
                for i in stride(from: chain.count - 1, through: 0, by: -1) {
                    slots[i == chain.count - 1 ? other : chain[i + 1]] = slots[chain[i]]
                    slots[chain[i]] = Slot()
                }
                return chain[0]
            }
            if chain.contains(other) { break }
            chain.append(other)
        }
        // No room down the chain: the entry at its start gives way.
        return chain[0]
    }

    /// Keeps the response just written (`length` bytes of `output` from `start`) in `index`,
    /// replacing what was there.
    private func keep(_ output: ByteBuffer, at start: Int, length: Int, in index: Int, hash: UInt64, key: Key, context: Int) {
        if let old = slots[index].bytes {
            old.deallocate()
            bytes -= Int(slots[index].questionLength) + Int(slots[index].responseLength)
            slots[index] = Slot()
        }
        let size = key.questionLength + length
        if bytes + size > byteBudget { clearSlots() }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
        storage.copyMemory(from: scratch, byteCount: key.questionLength)
        let response = storage + key.questionLength
        output.withUnsafeReadableBytes { readable in
            response.copyMemory(from: readable.baseAddress.unsafelyUnwrapped + (start - output.readerIndex), byteCount: length)
        }
        let flags = response.assumingMemoryBound(to: UInt8.self)
        flags[2] &= ~UInt8(truncatingIfNeeded: (HeaderFlags.rd | HeaderFlags.cd) >> 8)
        flags[3] &= ~UInt8(truncatingIfNeeded: HeaderFlags.rd | HeaderFlags.cd)
        slots[index] = Slot(
            hash: hash, bytes: storage, questionLength: UInt16(key.questionLength), responseLength: UInt16(length),
            limit: UInt16(key.limit), ednsShape: key.ednsShape, context: UInt16(context))
        bytes += size
    }

    /// The number of the asker `listener` and `clientZone`: the last one again (a worker
    /// answers a socket's batch at a time), else looked up, else added; a table that has met
    /// `contextLimit` askers starts afresh.
    private func context(_ listener: ListenerContext, _ clientZone: String?) -> Int {
        if lastContext >= 0, contexts[lastContext].listener == listener, contexts[lastContext].clientZone == clientZone {
            return lastContext
        }
        let asker = Context(listener: listener, clientZone: clientZone)
        if let known = contexts.firstIndex(of: asker) {
            lastContext = known
            return known
        }
        if contexts.count >= Self.contextLimit { clear() }
        contexts.append(asker)
        lastContext = contexts.count - 1
        return lastContext
    }

    /// True when `index` holds this question for this asker.
    @inline(__always)
    private func matches(_ index: Int, hash: UInt64, key: Key, context: Int) -> Bool {
        let slot = slots[index]
        guard let stored = slot.bytes, slot.hash == hash, Int(slot.questionLength) == key.questionLength,
              Int(slot.limit) == key.limit, slot.ednsShape == key.ednsShape, Int(slot.context) == context
        else { return false }
        return Self.equal(UnsafeRawPointer(stored), UnsafeRawPointer(scratch), count: key.questionLength)
    }

    /// Whether `count` bytes at `a` and `b` are equal, compared eight at a time in line: a
    /// question is a few dozen bytes, where calling `memcmp` costs more than comparing.
    @inline(__always)
    static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
        var offset = 0
        while offset + 8 <= count {
            guard a.loadUnaligned(fromByteOffset: offset, as: UInt64.self) == b.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            else { return false }
            offset += 8
        }
        while offset < count {
            guard a.load(fromByteOffset: offset, as: UInt8.self) == b.load(fromByteOffset: offset, as: UInt8.self) else { return false }
            offset += 1
        }
        return true
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

    /// One step of the table's hash: a multiply that spreads every bit of `word` upwards, and
    /// a shift that brings the high bits back down.
    @inline(__always)
    static func mix(_ hash: UInt64, _ word: UInt64) -> UInt64 {
        let mixed = (hash ^ word) &* 0x9E37_79B9_7F4A_7C15
        return mixed ^ mixed >> 31
    }

    /// `word`'s eight bytes with ASCII A–Z folded to a–z, all at once: a byte gets 0x20 when
    /// its low seven bits are at least "A" and below "[" and its top bit is clear. (A name's
    /// length bytes, 0 to 63, are never letters, so a name's wire form folds as a whole.)
    @inline(__always)
    static func lowercased(_ word: UInt64) -> UInt64 {
        let low = word & 0x7F7F_7F7F_7F7F_7F7F
        let atLeastA = low &+ 0x3F3F_3F3F_3F3F_3F3F
        let pastZ = low &+ 0x2525_2525_2525_2525
        let upper = atLeastA & ~pastZ & ~word & 0x8080_8080_8080_8080
        return word | upper >> 2
    }

    /// Reads the header, the question (folded into `scratch` and hashed on the way) and an OPT
    /// record, accepting only the plainest query: QR clear, opcode QUERY, one question, empty
    /// answer and authority sections, no additional record but an OPT of version 0 owned by the
    /// root whose options (if any) are well-formed and not a Client Subnet. Nil: let the
    /// responder judge it.
    private func readKey(_ message: UnsafeRawBufferPointer, transport: Responder.Transport) -> Key? {
        let count = message.count
        guard count >= 17, let base = message.baseAddress else { return nil }
        @inline(__always) func byte(_ at: Int) -> Int { Int(base.load(fromByteOffset: at, as: UInt8.self)) }
        @inline(__always) func read16(_ at: Int) -> Int { byte(at) << 8 | byte(at + 1) }
        let flags = read16(2)
        guard flags & Int(HeaderFlags.qr | HeaderFlags.opcodeMask) == 0, read16(4) == 1, read16(6) == 0, read16(8) == 0
        else { return nil }
        let additional = read16(10)
        guard additional <= 1 else { return nil }

        // The name's end, from its length bytes alone.
        var offset = 12
        while true {
            let length = byte(offset)
            if length == 0 { break }
            guard length <= 63, offset + 1 + length < count, offset + 1 + length - 12 < DNSName.maxWireLength else { return nil }
            offset += length + 1
        }
        let nameLength = offset + 1 - 12
        guard offset + 5 <= count else { return nil }
        let type = read16(offset + 1)
        // OPT is malformed as a question; TSIG, IXFR, AXFR and MAILB/MAILA go to their own paths.
        guard type != Int(RRType.opt.rawValue), !(249...254).contains(type) else { return nil }

        // The name folded to lower case into `scratch`, eight bytes at a time, then its type and
        // class as sent; hashed as written.
        var hash = seed
        var folded = 0
        while folded + 8 <= nameLength {
            let word = Self.lowercased(base.loadUnaligned(fromByteOffset: 12 + folded, as: UInt64.self))
            scratch.storeBytes(of: word, toByteOffset: folded, as: UInt64.self)
            hash = Self.mix(hash, word)
            folded += 8
        }
        if folded < nameLength {
            var tail: UInt64 = 0
            withUnsafeMutableBytes(of: &tail) {
                $0.baseAddress.unsafelyUnwrapped.copyMemory(from: base + 12 + folded, byteCount: nameLength - folded)
            }
            let word = Self.lowercased(tail)
            scratch.storeBytes(of: word, toByteOffset: folded, as: UInt64.self)
            hash = Self.mix(hash, word)
        }
        let typeAndClass = base.loadUnaligned(fromByteOffset: offset + 1, as: UInt32.self)
        scratch.storeBytes(of: typeAndClass, toByteOffset: nameLength, as: UInt32.self)

        let questionEnd = offset + 5
        var limit = transport == .tcp ? 65535 : EDNS.minimumPayloadSize
        var shape: UInt8 = 0
        if additional == 1 {
            // Root owner, type OPT, payload size, extended rcode, version 0, flags, options.
            guard questionEnd + 11 <= count, byte(questionEnd) == 0, read16(questionEnd + 1) == Int(RRType.opt.rawValue),
                  byte(questionEnd + 6) == 0
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
            shape = byte(questionEnd + 7) & 0x80 != 0 ? 3 : 1
        }
        hash = Self.mix(hash, UInt64(typeAndClass) | UInt64(nameLength) << 32 | UInt64(shape) << 40 | UInt64(limit) << 48)
        return Key(hash: hash, nameLength: nameLength, questionLength: nameLength + 4, limit: limit, ednsShape: shape)
    }
}
