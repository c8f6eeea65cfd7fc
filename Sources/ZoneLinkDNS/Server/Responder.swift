import Glibc
import Logging
import Metrics
import NIOCore
import Synchronization
import ZoneLinkCore

/// Who is asking, as far as answering cares: the listener's VPC and zone, and the source.
public struct ListenerContext: Sendable, Hashable {
    /// The VPC whose view this listener answers with (nil: a client of no VPC).
    public var vpc: String?
    /// The zone clients of this listener are in, when the listener says so.
    public var zone: String?

    public init(vpc: String?, zone: String?) {
        self.vpc = vpc
        self.zone = zone
    }
}

/// Turns one query message into one response message: parse, decide, encode.
///
/// The same for UDP and TCP; they differ only in the size limit. Every malformed input ends
/// in FORMERR or no answer, never in a trap. Names outside the served zones go to the
/// forwarder (when upstreams are configured), and only for the listener's own clients:
/// ZoneLink is never an open resolver.
public struct Responder: Sendable {
    public let engine: AnswerEngine
    public let health: ZoneHealth
    public let forwarder: Forwarder?
    /// Zone transfers to the configured secondaries; nil when there are none (then AXFR and
    /// IXFR are REFUSED and a signed query is answered as an unsigned one, as before).
    public let transfers: Transfers?
    /// The views' serials that SOA records carry to ordinary clients; nil: the catalog's
    /// serial, as a zone of its own would have (tests that need no persistence).
    public let clientSerials: ClientSerials?
    /// Grows with every responder made, so a later one serves what came later (a catalog, a
    /// health change): `ClientSerials` tells by it a question answered by an earlier one, in
    /// flight while the next was published, and does not work out that old content's serial.
    public let sequence: Int
    private static let made = Atomic<Int>(0)

    /// What serving transfers needs besides the engine and health: who may transfer what, and
    /// the serials handed out so far (shared by every responder of the process).
    public struct Transfers: Sendable {
        public var policy: TransferPolicy
        public var serials: ViewSerials
        /// The views last built, while engine and health stay the same.
        public var cache: ViewCache
        /// Where each transfer served (AXFR, IXFR) is logged, one line; refusals at debug
        /// (they are counted in `zonelink_dns_transfers_total` and could be a flood).
        public var logger: Logger?

        public init(policy: TransferPolicy, serials: ViewSerials, cache: ViewCache = ViewCache(), logger: Logger? = nil) {
            self.policy = policy
            self.serials = serials
            self.cache = cache
            self.logger = logger
        }
    }

    public init(
        engine: AnswerEngine, health: ZoneHealth = .allHealthy, forwarder: Forwarder? = nil, transfers: Transfers? = nil,
        clientSerials: ClientSerials? = nil
    ) {
        self.engine = engine
        self.health = health
        self.forwarder = forwarder
        self.transfers = transfers
        self.clientSerials = clientSerials
        self.sequence = Self.made.add(1, ordering: .relaxed).newValue
    }

    public enum Transport: Sendable { case udp, tcp }

    public enum Outcome: Sendable {
        /// The response is in the output buffer.
        case answered
        /// Nothing to send.
        case dropped
        /// Ask `forwarder` (`Forwarder.resolve`), which replies later.
        case forward(Query, Forwarder)
        /// Several whole messages to send in order (a zone transfer over TCP); never over UDP.
        case stream([[UInt8]])
    }

    /// Appends the response to `output`, or says why there is none yet.
    public func respond(
        to message: UnsafeRawBufferPointer, listener: ListenerContext, source: IPv4Address?,
        transport: Transport, into output: inout ByteBuffer
    ) -> Outcome {
        var preparable = false
        return respond(to: message, listener: listener, source: source, transport: transport, into: &output, preparable: &preparable)
    }

    /// `respond`, also saying whether the response may be prepared (`PreparedAnswers`): true
    /// only for an answer from the engine that depends on nothing but the view, the client's
    /// zone, the question and the EDNS shape, never on the source address itself (a refusal
    /// that forwarding would have answered for another source) or a Client Subnet.
    func respond(
        to message: UnsafeRawBufferPointer, listener: ListenerContext, source: IPv4Address?,
        transport: Transport, into output: inout ByteBuffer, preparable: inout Bool
    ) -> Outcome {
        preparable = false
        switch QueryParser.parse(message) {
        case .drop:
            return .dropped
        case .reject(let id, let flags, let rcode, let query):
            ResponseWriter.writeError(rcode, id: id, flags: flags, query: query, message: message, into: &output)
        case .transfer(let query):
            guard let transfers else { return answer(query, message: message, listener: listener, source: source, transport: transport, into: &output) }
            let response = TransferResponder(
                engine: engine, health: health, policy: transfers.policy, serials: transfers.serials, cache: transfers.cache)
                .respond(to: Array(message), query: query, source: source, overTCP: transport == .tcp, now: UInt64(time(nil)))
            Counter(label: "zonelink_dns_transfers_total", dimensions: [("type", response.kind), ("result", response.result.rawValue)]).increment()
            if let logger = transfers.logger, response.kind == "axfr" || response.kind == "ixfr" {
                Self.log(response, source: source, transport: transport, to: logger)
            }
            if response.messages.count == 1 || transport == .udp {
                output.writeBytes(response.messages[0])
                return .answered
            }
            return .stream(response.messages)
        case .query(let query):
            let outcome = answer(query, message: message, listener: listener, source: source, transport: transport, into: &output)
            if case .answered = outcome, query.edns?.clientSubnet == nil, query.edns.map({ $0.version == 0 }) ?? true {
                preparable = forwarder == nil || query.qclass != DNSClass.internet || engine.serves(query.name, vpc: listener.vpc)
            }
            return outcome
        }
        return .answered
    }

    private func answer(
        _ query: Query, message: UnsafeRawBufferPointer, listener: ListenerContext, source: IPv4Address?,
        transport: Transport, into output: inout ByteBuffer
    ) -> Outcome {
        if let edns = query.edns, edns.version > 0 {
            ResponseWriter.writeError(.badVers, id: query.id, flags: query.flags, query: query, message: message, into: &output)
            return .answered
        }
        let limit = transport == .tcp ? 65535 : query.udpPayloadLimit
        var trail = SilentTrail()
        switch decide(query, listener: listener, source: source, trail: &trail) {
        case .forward(let forwarder):
            return forwarder.answerFromCache(query, message: message, limit: limit, into: &output)
                ? .answered : .forward(query, forwarder)
        case .answer(let answer):
            ResponseWriter.write(answer, to: query, message: message, limit: limit, into: &output)
            return .answered
        }
    }

    /// What a parsed query gets: an answer from the engine, or forwarding.
    enum Decision {
        case answer(Answer)
        case forward(Forwarder)
    }

    /// The one decision of an answer, shared by serving (`SilentTrail`) and `explain`
    /// (`DecisionTrail`): forward or answer, the client's zone, then the engine.
    func decide<Trail: AnswerTrail>(
        _ query: Query, listener: ListenerContext, source: IPv4Address?, trail: inout Trail
    ) -> Decision {
        trail.view(listener.vpc, known: engine.hasView(listener.vpc))
        if let forwarder, query.qclass == DNSClass.internet, !engine.serves(query.name, vpc: listener.vpc),
           isOwnClient(source, of: listener) {
            trail.forwarded()
            return .forward(forwarder)
        }
        let client = clientZone(of: query, listener: listener, source: source)
        trail.clientZone(client)
        var answer = engine.answer(query, vpc: listener.vpc, clientZone: client.zone, health: health, trail: &trail)
        if client.scope > 0, answer.answer.contains(where: { $0.rrset.enis != nil }) { answer.clientSubnetScope = client.scope }
        if let clientSerials {
            let view = listener.vpc.map { ViewKey(vpc: $0, zone: client.zone) } ?? .outside(zone: client.zone)
            clientSerials.stamp(&answer, view: view, engine: engine, health: health, responder: sequence)
        }
        return .answer(answer)
    }

    /// A listener's own clients, the only ones forwarded for: this host (loopback), the
    /// listener's VPC, and trusted forwarders.
    func isOwnClient(_ source: IPv4Address?, of listener: ListenerContext) -> Bool {
        guard let source else { return false }
        if IPv4Prefix(network: IPv4Address(0x7F00_0000), length: 8)!.contains(source) { return true }
        if let vpc = listener.vpc.flatMap({ engine.catalog.vpc($0) }), vpc.cidr.contains(source) { return true }
        return engine.catalog.dns.trustedForwarders.contains { $0.contains(source) }
    }
}

extension Responder {
    /// One line per AXFR or IXFR request: served at info, refused at debug. Key names and
    /// views, never a secret.
    static func log(_ response: TransferResponder.Response, source: IPv4Address?, transport: Transport, to logger: Logger) {
        var metadata: Logger.Metadata = [
            "dns.transfer": "\(response.kind)", "dns.result": "\(response.result.rawValue)",
            "dns.client": "\(source.map { "\($0)" } ?? "-")", "dns.transport": "\(transport == .tcp ? "tcp" : "udp")",
        ]
        if let view = response.view { metadata["dns.view"] = "\(view)" }
        if let zone = response.zone { metadata["dns.zone"] = "\(zone)" }
        if let serial = response.serial { metadata["dns.serial"] = "\(serial)" }
        switch response.result {
        case .ok, .incremental, .upToDate:
            metadata["dns.messages"] = "\(response.messages.count)"
            metadata["dns.bytes"] = "\(response.messages.reduce(0) { $0 + $1.count })"
            logger.info("transfer served", metadata: metadata)
        default:
            logger.debug("transfer refused", metadata: metadata)
        }
    }

    /// The client's zone, decided by `ZoneAffinity.clientZone` from this listener and query.
    func clientZone(of query: Query, listener: ListenerContext, source: IPv4Address?) -> ZoneAffinity.ClientZone {
        ZoneAffinity.clientZone(
            listenerZone: listener.zone, vpc: listener.vpc.flatMap { engine.catalog.vpc($0) }, source: source,
            clientSubnet: query.edns?.clientSubnet?.ipv4Network, trustedForwarders: engine.catalog.dns.trustedForwarders)
    }
}

/// The current responder, published by whoever builds catalogs and read by every listener.
///
/// Readers check a generation number (one atomic load) and take the lock only when a new
/// responder was published, so answering never contends with other answering.
public final class ResponderPublisher: Sendable {
    private let generation = Atomic<Int>(0)
    private let current: Mutex<Responder>

    public init(_ responder: Responder) {
        self.current = Mutex(responder)
    }

    public func publish(_ responder: Responder) {
        current.withLock { $0 = responder }
        generation.add(1, ordering: .releasing)
    }

    /// The responder, if one newer than `seen` was published; updates `seen`.
    @discardableResult
    public func refresh(_ cached: inout Responder, seen: inout Int) -> Bool {
        let now = generation.load(ordering: .acquiring)
        guard now != seen else { return false }
        cached = current.withLock { $0 }
        seen = now
        return true
    }

    public var responder: Responder { current.withLock { $0 } }
}
