import Glibc
import Logging
import Metrics
import NIOCore
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// How the forwarder waits, caches and bounds itself.
public struct ForwarderSettings: Sendable {
    /// Every client gets its response (an answer, else SERVFAIL) within this, from the moment
    /// its question was handed to `resolve` or joined one already upstream (plus scheduling slack).
    public var timeout: Duration
    /// The longest one upstream is waited for before the next is asked.
    public var attemptTimeout: Duration
    /// No answer is cached longer than this, and no TTL served is larger.
    public var maxTTL: UInt32
    /// Entries cached at most (spread over `Forwarder.cacheShards` shards, least recently used
    /// evicted first in each).
    public var cacheSize: Int
    /// Questions being resolved upstream at once (one socket each); a client asking a new
    /// question beyond that gets SERVFAIL at once (`dns.limits.forwardInFlight`).
    public var maxInFlight: Int
    /// Questions one source address may have started that are being resolved upstream at once;
    /// beyond that its new questions get SERVFAIL at once, without taking an upstream slot, so
    /// one client's flood of random names leaves the others their share
    /// (`dns.limits.forwardInFlightPerClient`). Joining a question already upstream is free.
    public var maxInFlightPerClient: Int

    public init(
        timeout: Duration = .seconds(2), attemptTimeout: Duration = .milliseconds(800), maxTTL: UInt32 = 3600,
        cacheSize: Int = 10_000, maxInFlight: Int = 500, maxInFlightPerClient: Int = 50
    ) {
        self.timeout = timeout
        self.attemptTimeout = attemptTimeout
        self.maxTTL = maxTTL
        self.cacheSize = cacheSize
        self.maxInFlight = maxInFlight
        self.maxInFlightPerClient = maxInFlightPerClient
    }
}

/// Counters since the forwarder was made.
public struct ForwarderStatistics: Sendable, Equatable, CustomStringConvertible {
    /// Queries sent upstream, over UDP and TCP.
    public var upstreamQueries: Int
    /// Of those, the ones over TCP (retries of TC answers).
    public var upstreamTCPQueries: Int
    /// Clients answered from the cache (by `answerFromCache` or `resolve`).
    public var cacheHits: Int
    /// Clients that joined a question already being resolved upstream.
    public var coalesced: Int
    /// Messages from upstream sockets that were not the answer awaited (wrong ID, question,
    /// source, or malformed). Datagrams from another address or port than the upstream's never
    /// get this far: the socket is connected, so the kernel drops them.
    public var ignored: Int
    /// Upstream attempts that timed out.
    public var timeouts: Int
    /// Clients given SERVFAIL (no upstream answered usefully in time, or too many in flight).
    public var failures: Int
    /// Of those, new questions refused for want of an upstream slot: all taken, or the
    /// client's share taken.
    public var refusedInFlight: Int
    public var refusedPerClient: Int
    public var cacheEntries: Int
    public var cacheEvictions: Int
    /// Questions being resolved upstream now.
    public var inFlight: Int

    public var description: String {
        "upstreamQueries=\(upstreamQueries) tcp=\(upstreamTCPQueries) cacheHits=\(cacheHits) coalesced=\(coalesced) "
            + "ignored=\(ignored) timeouts=\(timeouts) failures=\(failures) cacheEntries=\(cacheEntries) evictions=\(cacheEvictions) "
            + "inFlight=\(inFlight) refusedInFlight=\(refusedInFlight) refusedPerClient=\(refusedPerClient)"
    }
}

/// Counters the event loops and listeners bump without a lock.
final class ForwarderCounters: Sendable {
    let sent = Atomic<Int>(0)
    let sentOverTCP = Atomic<Int>(0)
    let coalesced = Atomic<Int>(0)
    let ignored = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    let refusedInFlight = Atomic<Int>(0)
    let refusedPerClient = Atomic<Int>(0)
}

/// The questions being resolved upstream, who waits for each, and whose question each was:
/// the client that started one holds one of its `ClientQuota` slots until it ends.
struct InFlightQuestions {
    var waiters: [ForwardKey: [Forwarder.Waiter]] = [:]
    var starters: [ForwardKey: IPv4Address?] = [:]
    var quota: ClientQuota

    init(settings: ForwarderSettings) {
        quota = ClientQuota(total: settings.maxInFlight, perClient: settings.maxInFlightPerClient)
    }
}

/// One shard of the cache, behind its own lock (a class: `Mutex` cannot sit in an array).
final class CacheShard: Sendable {
    let cache: Mutex<AnswerCache>
    init(capacity: Int) { cache = Mutex(AnswerCache(capacity: capacity)) }
}

/// Resolves names outside the served zones through `dns.upstreams` (`docs/dns.md`): UDP,
/// TCP when the answer is truncated, a cache, and one upstream query for any number of clients
/// asking the same question at once.
///
/// It forwards for whoever calls it: deciding who may be forwarded for is the caller's job.
/// ZoneLink calls it only for queries that arrived on its own listeners (a VPC's DNS address,
/// `dns.listen`), so it is never an open resolver; do not hand it queries from anywhere else.
///
/// Spoofing: every upstream query has a random ID (the system CSPRNG) and goes from a fresh
/// socket on a kernel-chosen ephemeral port, connected to the upstream; an answer counts only
/// when its ID, its question (name ignoring case, type, class) and its source address and port
/// match. Anything else is counted (`ignored`) and the wait goes on.
///
/// Caching (see `CachePolicy`): positive answers for their least answer TTL, negative ones for
/// the SOA's negative TTL (RFC 2308; without a SOA not at all), both at most `maxTTL`; served
/// TTLs count down with the time spent in the cache. SERVFAIL, and every other failure, is not
/// cached: a failing upstream is asked again by the next client (concurrent clients still share
/// one resolution). Key: `ForwardKey` (name in lower case, type, class, DO).
///
/// Responses: the client's ID and question (case as asked), RD and CD echoed, RA and the rcode
/// from the upstream, AA clear; OPT (1232, DO echoed) exactly when the client sent one;
/// additional records dropped, else TC with the question only, when over `limit`.
///
/// `Sendable`: all state is in `Mutex`es and atomics; a resolution's own state lives on its
/// event loop (`Resolution`).
public final class Forwarder: Sendable {
    /// Cache shards: a power of two, so that UDP workers on several threads rarely meet on a lock.
    static let cacheShards = 16

    let upstreams: [SocketAddress]
    let group: any EventLoopGroup
    let settings: ForwarderSettings
    let logger: Logger
    let attemptTimeout: TimeAmount
    let timeout: TimeAmount
    let counters = ForwarderCounters()
    /// The upstream that answered last: tried first.
    let preferred = Atomic<Int>(0)
    private let shards: [CacheShard]
    /// Questions being resolved, and who waits for each.
    private let inFlight: Mutex<InFlightQuestions>
    /// Refusals a flooding client causes, logged at most once per kind per 10 s.
    private let warnings: ThrottledWarnings

    struct Waiter: Sendable {
        let query: Query
        let message: [UInt8]
        let limit: Int
        let reply: @Sendable (ByteBuffer) -> Void
    }

    public init(upstreams: [IPv4Endpoint], group: any EventLoopGroup, settings: ForwarderSettings = .init(), logger: Logger) {
        self.upstreams = upstreams.map(\.socketAddress)
        self.group = group
        self.settings = settings
        self.logger = logger
        self.timeout = TimeAmount(settings.timeout)
        self.attemptTimeout = TimeAmount(settings.attemptTimeout)
        self.inFlight = Mutex(InFlightQuestions(settings: settings))
        self.warnings = ThrottledWarnings(logger: logger)
        let perShard = (max(1, settings.cacheSize) + Self.cacheShards - 1) / Self.cacheShards
        self.shards = (0..<Self.cacheShards).map { _ in CacheShard(capacity: perShard) }
    }

    /// Synchronous fast path for a UDP worker thread: on a cache hit, appends the response to
    /// `query` (`message` as received: its ID and question) to `output` and returns true.
    /// `limit`: the most the client takes (`query.udpPayloadLimit` over UDP, 65535 over TCP).
    /// Never waits but for a shard's lock, held for a dictionary lookup.
    public func answerFromCache(_ query: Query, message: UnsafeRawBufferPointer, limit: Int, into output: inout ByteBuffer) -> Bool {
        let key = ForwardKey(query)
        let now = NIODeadline.now()
        guard let answer = shard(for: key).cache.withLock({ $0.lookup(key, now: now) }) else { return false }
        answer.write(to: query, message: message, now: now, limit: limit, into: &output)
        return true
    }

    /// Resolves `query` through the cache, a resolution already under way, or the upstreams,
    /// and calls `reply` exactly once (from any thread, perhaps before returning) with the
    /// complete response for this client: the answer, or SERVFAIL on failure, within
    /// `settings.timeout` (plus scheduling slack). `message` is the client's query as received;
    /// `limit` as for `answerFromCache`. Zone transfers (AXFR, IXFR) are not forwarded: REFUSED.
    /// `reply` runs on an event loop of `group` (or on the caller's thread, for a cache hit or
    /// an immediate failure): it must not block; hand the bytes to the client's socket and return.
    /// `client`: the source address, whose share of upstream slots a new question takes.
    public func resolve(
        _ query: Query, message: [UInt8], limit: Int, client: IPv4Address? = nil, reply: @escaping @Sendable (ByteBuffer) -> Void
    ) {
        guard !upstreams.isEmpty, query.type != .axfr, query.type != .ixfr else {
            reply(Self.error(.refused, for: query, message: message))
            return
        }
        let key = ForwardKey(query)
        let waiter = Waiter(query: query, message: message, limit: limit, reply: reply)
        enum Plan { case cached(ForwardedAnswer), joined, started, refused(ClientQuota.Refusal) }
        let now = NIODeadline.now()
        // The cache is read under the in-flight lock, so that a resolution finishing meanwhile
        // (it caches, then leaves the table) cannot be missed both ways.
        let plan: Plan = inFlight.withLock { table in
            if let index = table.waiters.index(forKey: key) {
                table.waiters.values[index].append(waiter)
                return .joined
            }
            if let answer = shard(for: key).cache.withLock({ $0.lookup(key, now: now) }) { return .cached(answer) }
            if let refusal = table.quota.take(for: client) { return .refused(refusal) }
            table.waiters[key] = [waiter]
            table.starters[key] = .some(client)
            return .started
        }
        switch plan {
        case .cached(let answer):
            reply(Self.response(answer, for: waiter, now: now))
        case .joined:
            counters.coalesced.add(1, ordering: .relaxed)
        case .refused(let refusal):
            // SERVFAIL rather than silence: a polite client that only had a burst learns at once
            // and asks again or elsewhere, and the answer is no larger than the question.
            counters.failures.add(1, ordering: .relaxed)
            let reason = refusal == .total ? "inFlight" : "perClient"
            if refusal == .total {
                counters.refusedInFlight.add(1, ordering: .relaxed)
            } else {
                counters.refusedPerClient.add(1, ordering: .relaxed)
            }
            Counter(label: "zonelink_dns_forward_refused_total", dimensions: [("reason", reason)]).increment()
            warnings.warn(
                "dns.forward.refused.\(reason)",
                refusal == .total
                    ? "forwarding refused (SERVFAIL): dns.limits.forwardInFlight questions are being resolved"
                    : "forwarding refused (SERVFAIL): this client has dns.limits.forwardInFlightPerClient questions being resolved",
                metadata: ["dns.client": "\(client.map { "\($0)" } ?? "-")"])
            reply(Self.error(.servFail, for: query, message: message))
        case .started:
            let deadline = now + timeout
            let count = upstreams.count
            let first = preferred.load(ordering: .relaxed) % count
            let order = (0..<count).map { (first + $0) % count }
            let loop = group.next()
            loop.execute { [self] in
                Resolution(forwarder: self, key: key, loop: loop, deadline: deadline, order: order).start()
            }
        }
    }

    public var statistics: ForwarderStatistics {
        var statistics = ForwarderStatistics(
            upstreamQueries: counters.sent.load(ordering: .relaxed), upstreamTCPQueries: counters.sentOverTCP.load(ordering: .relaxed),
            cacheHits: 0, coalesced: counters.coalesced.load(ordering: .relaxed), ignored: counters.ignored.load(ordering: .relaxed),
            timeouts: counters.timeouts.load(ordering: .relaxed), failures: counters.failures.load(ordering: .relaxed),
            refusedInFlight: counters.refusedInFlight.load(ordering: .relaxed),
            refusedPerClient: counters.refusedPerClient.load(ordering: .relaxed),
            cacheEntries: 0, cacheEvictions: 0, inFlight: inFlight.withLock { $0.waiters.count })
        for shard in shards {
            shard.cache.withLock { cache in
                statistics.cacheHits += cache.hits
                statistics.cacheEntries += cache.count
                statistics.cacheEvictions += cache.evictions
            }
        }
        return statistics
    }

    /// Returns once no question is being resolved upstream, so that every `reply` has been
    /// called: at most `settings.timeout` (plus slack) after the last `resolve`. Call it after
    /// the listeners stopped and before closing the sockets replies are sent on.
    public func drain() async {
        let clock = ContinuousClock()
        let deadline = clock.now + settings.timeout + .seconds(1)
        while inFlight.withLock({ !$0.waiters.isEmpty }), clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Empties the cache (say, when the upstreams change or an operator asks).
    public func flushCache() {
        for shard in shards { shard.cache.withLock { $0.removeAll() } }
    }

    /// Ends a resolution: caches the answer (if it may be), then answers everyone waiting.
    func complete(_ key: ForwardKey, with answer: ForwardedAnswer?) {
        let now = NIODeadline.now()
        if let answer, answer.lifetime > 0 {
            shard(for: key).cache.withLock { $0.insert(key, answer, now: now) }
        }
        let waiters: [Waiter] = inFlight.withLock { table -> [Waiter]? in
            if let starter = table.starters.removeValue(forKey: key) { table.quota.release(for: starter) }
            return table.waiters.removeValue(forKey: key)
        } ?? []
        if answer == nil { counters.failures.add(waiters.count, ordering: .relaxed) }
        for waiter in waiters {
            waiter.reply(answer.map { Self.response($0, for: waiter, now: now) }
                ?? Self.error(.servFail, for: waiter.query, message: waiter.message))
        }
    }

    private func shard(for key: ForwardKey) -> CacheShard {
        shards[key.hashValue & (Self.cacheShards - 1)]
    }

    private static func response(_ answer: ForwardedAnswer, for waiter: Waiter, now: NIODeadline) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: min(waiter.limit, answer.message.count + 11))
        waiter.message.withUnsafeBytes { answer.write(to: waiter.query, message: $0, now: now, limit: waiter.limit, into: &buffer) }
        return buffer
    }

    private static func error(_ rcode: RCode, for query: Query, message: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        message.withUnsafeBytes {
            ResponseWriter.writeError(rcode, id: query.id, flags: query.flags, query: query, message: $0, into: &buffer)
        }
        return buffer
    }
}
