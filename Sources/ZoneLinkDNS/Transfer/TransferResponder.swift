import ZoneLinkCore

/// Answers what `QueryParser` routes to transfers: AXFR, IXFR and TSIG-signed queries. Pure:
/// the engine, the health, the policy, the serials and the time go in, messages come out.
///
/// The order of checks is the RFCs' and never opens a transfer by accident:
/// 1. malformed (TSIG not last, cut short) → FORMERR;
/// 2. no TSIG → REFUSED; unknown key or algorithm → NOTAUTH + BADKEY; wrong MAC → NOTAUTH +
///    BADSIG; MAC shorter than the hash → NOTAUTH + BADTRUNC (all unsigned: the client's key
///    is not one ZoneLink can sign with); outside the fudge → NOTAUTH + BADTIME, signed;
/// 3. source outside the key's `allowFrom` → REFUSED, signed;
/// 4. AXFR over UDP → REFUSED, signed (RFC 5936 section 4.2: AXFR is TCP only);
/// 5. a zone the key's view does not hold → NOTAUTH, signed;
/// 6. SOA → the view's SOA; AXFR → the whole zone; IXFR → the SOA alone when the client is
///    current or ahead (and over UDP, which tells the client to come back over TCP), the
///    changes since its serial when the journal reaches back to it (`ViewSerials.changes`),
///    else the whole zone AXFR-style (RFC 1995 section 4 allows it). Every message signed.
public struct TransferResponder: Sendable {
    public let engine: AnswerEngine
    public let health: ZoneHealth
    public let policy: TransferPolicy
    public let serials: ViewSerials
    public let cache: ViewCache

    public init(engine: AnswerEngine, health: ZoneHealth, policy: TransferPolicy, serials: ViewSerials, cache: ViewCache = ViewCache()) {
        self.engine = engine
        self.health = health
        self.policy = policy
        self.serials = serials
        self.cache = cache
    }

    /// What happened, for metrics (`zonelink_dns_transfers_total{type,result}`) and logs.
    public enum Result: String, Sendable {
        case ok, incremental, upToDate = "up_to_date", formErr = "formerr", noKey = "no_key", badKey = "bad_key", badSig = "bad_sig"
        case badTime = "bad_time", badTrunc = "bad_trunc", source, udp, notInView = "not_in_view", notImplemented = "not_implemented"
    }

    public struct Response: Sendable {
        /// Whole DNS messages, in order (several only for a transfer over TCP).
        public var messages: [[UInt8]]
        public var result: Result
        /// The request's type, as the metrics label it: axfr, ixfr, soa or other.
        public var kind: String
        /// The view the key opened, when it did.
        public var view: ViewKey?
        /// The zone and serial sent, when a zone was (SOA, AXFR, IXFR).
        public var zone: DNSName? = nil
        public var serial: UInt32? = nil
    }

    public func respond(to message: [UInt8], query: Query, source: IPv4Address?, overTCP: Bool, now: UInt64) -> Response {
        let kind = query.type == .axfr ? "axfr" : query.type == .ixfr ? "ixfr" : query.type == .soa ? "soa" : "other"
        let writer = TransferMessages(id: query.id, requestFlags: query.flags, question: Array(message[12..<query.questionEnd]))
        func reply(_ messages: [[UInt8]], _ result: Result, _ view: ViewKey? = nil) -> Response {
            Response(messages: messages, result: result, kind: kind, view: view)
        }

        let found: TSIGRecord?
        switch TSIG.find(in: message) {
        case .failure: return reply([writer.error(.formErr)], .formErr)
        case .success(let record): found = record
        }
        guard let record = found else { return reply([writer.error(.refused)], .noKey) }
        let verdict = TSIG.verify(message, record, key: { policy.grants[$0]?.key }, now: now)
        let key: TSIGKey
        switch verdict {
        case .badKey(let record):
            return reply([TSIG.appendUnsigned(to: writer.error(.notAuth), record: record, error: .badKey, time: now)], .badKey)
        case .badSig(let record):
            return reply([TSIG.appendUnsigned(to: writer.error(.notAuth), record: record, error: .badSig, time: now)], .badSig)
        case .badTrunc(let record):
            return reply([TSIG.appendUnsigned(to: writer.error(.notAuth), record: record, error: .badTrunc, time: now)], .badTrunc)
        case .badTime(let key, let record):
            // Other Data carries the server's time, so the client can see the skew (section 5.2.3).
            var chain = TSIG.Chain(key: key, requestMAC: record.mac)
            var time: [UInt8] = []
            time.append48(now)
            return reply([chain.sign(writer.error(.notAuth), originalID: record.originalID, time: now, error: .badTime, otherData: time)], .badTime)
        case .valid(let valid, _):
            key = valid
        }
        guard let grant = policy.grants[key.name] else { return reply([writer.error(.refused)], .badKey) }
        var chain: TSIG.Chain? = TSIG.Chain(key: key, requestMAC: record.mac)
        func signed(_ rcode: RCode, _ result: Result) -> Response {
            reply(writer.messages([], chain: &chain, time: now, rcode: rcode), result, grant.view)
        }
        guard let source, grant.allowFrom.contains(where: { $0.contains(source) }) else { return signed(.refused, .source) }
        if query.type == .axfr && !overTCP { return signed(.refused, .udp) }
        guard query.qclass == DNSClass.internet else { return signed(.notAuth, .notInView) }
        guard query.type == .axfr || query.type == .ixfr || query.type == .soa else { return signed(.notImp, .notImplemented) }
        guard let (zone, digest) = cache.zone(query.name, of: grant.view, engine: engine, health: health) else {
            return signed(.notAuth, .notInView)
        }
        let serialKey = ViewSerials.Key(view: grant.view, apex: zone.apex)
        let serial = serials.update(serialKey, zone: zone, digest: digest).serial
        let current = zone.with(serial: serial)
        /// A zone sent: its apex and serial go to the log.
        func sent(_ messages: [[UInt8]], _ result: Result, _ view: ViewKey?) -> Response {
            Response(messages: messages, result: result, kind: kind, view: view, zone: zone.apex, serial: serial)
        }
        switch query.type {
        case .soa:
            return sent(writer.messages([current.soa], chain: &chain, time: now), .ok, grant.view)
        case .ixfr:
            let clientSerial = Self.ixfrSerial(message, query: query)
            if !overTCP || clientSerial.map({ !SerialNumber.isGreater(serial, than: $0) }) == true {
                return sent(writer.messages([current.soa], chain: &chain, time: now), .upToDate, grant.view)
            }
            if let clientSerial, let changes = serials.changes(serialKey, since: clientSerial),
               let last = changes.last, last.after == current.soa {
                // RFC 1995 section 4: the current SOA, each change (old SOA, deletions, new SOA,
                // additions), the current SOA again.
                var records: [TransferRecord] = [current.soa]
                for change in changes {
                    records.append(change.before)
                    records += change.deleted
                    records.append(change.after)
                    records += change.added
                }
                records.append(current.soa)
                return sent(writer.messages(records, chain: &chain, time: now), .incremental, grant.view)
            }
            return sent(wholeZone(current, view: grant.view, writer: writer, chain: &chain, now: now), .ok, grant.view)
        default:
            return sent(wholeZone(current, view: grant.view, writer: writer, chain: &chain, now: now), .ok, grant.view)
        }
    }

    /// The AXFR of `zone`: the messages the cache keeps for its content and serial, fitted to
    /// this request and signed, so that transferring an unchanged view again costs copying and
    /// signing 1.5 MB rather than writing 60,000 records (for 10,000 endpoints).
    func wholeZone(_ zone: TransferZone, view: ViewKey, writer: TransferMessages, chain: inout TSIG.Chain?, now: UInt64) -> [[UInt8]] {
        let written = cache.messages(zone.apex, of: view, engine: engine, health: health, serial: zone.serial) {
            // With a question of the apex, as the requests that reuse them have.
            var unsigned: TSIG.Chain? = nil
            let canonical = TransferMessages(id: 0, requestFlags: 0, question: zone.apex.wire + [0, UInt8(RRType.axfr.rawValue), 0, 1])
            return canonical.messages(zone.axfrRecords, chain: &unsigned, time: 0)
        }
        return writer.reused(written, chain: &chain, time: now) ?? writer.messages(zone.axfrRecords, chain: &chain, time: now)
    }

    /// The serial of the SOA an IXFR request carries in its authority section (RFC 1995
    /// section 3), nil when it carries none that can be read.
    static func ixfrSerial(_ message: [UInt8], query: Query) -> UInt32? {
        guard message.count >= 12 else { return nil }
        let answers = Int(message[6]) << 8 | Int(message[7])
        let authority = Int(message[8]) << 8 | Int(message[9])
        var reader = WireReader(message, at: query.questionEnd)
        for index in 0..<(answers + authority) {
            guard let record = reader.record() else { return nil }
            if index >= answers, record.type == RRType.soa.rawValue, record.rdata.count >= 22 {
                let at = record.rdata.upperBound - 20
                return UInt32(message[at]) << 24 | UInt32(message[at + 1]) << 16 | UInt32(message[at + 2]) << 8 | UInt32(message[at + 3])
            }
        }
        return nil
    }
}
