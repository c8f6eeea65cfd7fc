import Dispatch
import Glibc
import Logging
import Metrics
import NIOCore
import NIOPosix
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// Sends NOTIFY (RFC 1996) to the secondaries of each view whose content changed, and retries
/// with backoff (`NotifyMessage.backoff`) until a signed acknowledgement arrives or a newer
/// change replaces it. Every NOTIFY, retry and acknowledgement is logged and counted
/// (`zonelink_dns_notify_total{result="sent"|"retried"|"acknowledged"|"superseded"}`); a NOTIFY
/// that a newer change replaces, or that is still waiting when ZoneLink stops, is logged as
/// given up.
///
/// `contentMayHaveChanged` is called on every publish (catalog or health); each notified
/// view's zones are built on a queue of the notifier's own, one publish after the other (the
/// latest one when several wait), so neither answering nor an event loop waits for it, and
/// `ViewSerials` says whether the content changed: the same serial a secondary then reads.
/// Sending, retries and acknowledgements live on one event loop; `announced` on the queue.
public final class TransferNotifier: @unchecked Sendable {
    private let loop: EventLoop
    private let serials: ViewSerials
    private let logger: Logger
    private var channel: Channel?
    /// Works out what changed, in publish order (serial: an older content worked out after a
    /// newer one would look like a change back).
    private let planner = DispatchQueue(label: "zonelink-notify-planner")
    /// The latest publish not yet worked out; nil when the planner has nothing queued.
    private let latest = Mutex<(AnswerEngine, ZoneHealth, TransferPolicy, ViewCache)?>(nil)
    /// The serial last announced per secondary address and zone (planner only): the first
    /// publish announces every zone, so secondaries holding a copy from before a restart look again.
    private var announced: [PendingKey: UInt32] = [:]
    private var pending: [PendingKey: Pending] = [:]
    private var byID: [UInt16: PendingKey] = [:]
    private var nextID = UInt16.random(in: 0...UInt16.max)

    struct PendingKey: Hashable {
        var target: TransferPolicy.NotifyTarget
        var apex: DNSName
    }

    struct Pending {
        var id: UInt16
        var mac: [UInt8]
        var key: TSIGKey
        var soa: TransferRecord
        var attempt: Int
        var retry: Scheduled<Void>?
    }

    public init(group: EventLoopGroup, serials: ViewSerials, logger: Logger) {
        self.loop = group.next()
        self.serials = serials
        self.logger = logger
    }

    /// Opens the UDP socket NOTIFY goes out on and acknowledgements come back to (the host's
    /// namespace, an ephemeral port).
    public func start() async throws {
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcknowledgementHandler(notifier: self))
                }
            }
            .bind(host: "0.0.0.0", port: 0).get()
        try await loop.submit { self.channel = channel }.get()
    }

    public func stop() async {
        let channel = try? await loop.submit { () -> Channel? in
            for (target, pending) in self.pending {
                pending.retry?.cancel()
                self.logger.info("NOTIFY given up: ZoneLink stops", metadata: [
                    "dns.secondary": "\(target.target.secondary)", "dns.notify": "\(target.target.address)", "dns.zone": "\(target.apex)",
                    "dns.attempts": "\(pending.attempt + 1)",
                ])
            }
            self.pending = [:]
            self.byID = [:]
            defer { self.channel = nil }
            return self.channel
        }.get()
        try? await channel?.close()
    }

    /// Notifies the secondaries of every view whose content differs from what was announced.
    /// The views are built through `cache`, so the transfers the NOTIFYs call for find them built.
    public func contentMayHaveChanged(engine: AnswerEngine, health: ZoneHealth, policy: TransferPolicy, cache: ViewCache) {
        guard policy.grants.values.contains(where: { !$0.notify.isEmpty }) else { return }
        let queued = latest.withLock { slot in
            defer { slot = (engine, health, policy, cache) }
            return slot != nil
        }
        // A work item already waits; it takes this publish, the latest.
        guard !queued else { return }
        planner.async { [self] in
            guard let (engine, health, policy, cache) = latest.withLock({ slot in
                defer { slot = nil }
                return slot
            }) else { return }
            let due = announce(engine: engine, health: health, policy: policy, cache: cache)
            guard !due.isEmpty else { return }
            loop.execute { [self] in
                for (target, soa, key) in due { send(target, soa: soa, key: key, attempt: 0) }
            }
        }
    }

    /// The NOTIFYs a publish calls for: each address of each zone whose serial is not the one
    /// last announced there. On the planner queue.
    private func announce(engine: AnswerEngine, health: ZoneHealth, policy: TransferPolicy, cache: ViewCache) -> [(PendingKey, TransferRecord, TSIGKey)] {
        var due: [(PendingKey, TransferRecord, TSIGKey)] = []
        for grant in policy.grants.values where !grant.notify.isEmpty {
            guard engine.catalog.vpc(grant.view.vpc) != nil else { continue }
            let apexes = engine.transferableZones(vpc: grant.view.vpc).map(\.apex) + [ViewContent.catalogApex]
            for apex in apexes {
                guard let (zone, digest) = cache.zone(apex, of: grant.view, engine: engine, health: health) else { continue }
                let serial = serials.update(ViewSerials.Key(view: grant.view, apex: zone.apex), zone: zone, digest: digest).serial
                for target in grant.notify {
                    let key = PendingKey(target: target, apex: zone.apex)
                    guard announced[key] != serial else { continue }
                    announced[key] = serial
                    due.append((key, zone.with(serial: serial).soa, grant.key))
                }
            }
        }
        return due
    }

    private func send(_ target: PendingKey, soa: TransferRecord, key: TSIGKey, attempt: Int) {
        guard let channel else { return }
        if let old = pending.removeValue(forKey: target) {
            old.retry?.cancel()
            byID[old.id] = nil
            // Not a retry (those carry the same SOA): a newer change replaces the old NOTIFY,
            // which is given up unacknowledged.
            if old.soa != soa {
                logger.info("NOTIFY given up: a newer change replaces it", metadata: [
                    "dns.secondary": "\(target.target.secondary)", "dns.notify": "\(target.target.address)", "dns.zone": "\(target.apex)",
                    "dns.serial": "\(TransferZone(apex: target.apex, soa: old.soa, records: []).serial)", "dns.attempts": "\(old.attempt + 1)",
                ])
                Counter(label: "zonelink_dns_notify_total", dimensions: [("result", "superseded")]).increment()
            }
        }
        nextID &+= 1
        let id = nextID
        let (message, mac) = NotifyMessage.signed(id: id, zone: target.apex, soa: soa, key: key, time: UInt64(time(nil)))
        var buffer = channel.allocator.buffer(capacity: message.count)
        buffer.writeBytes(message)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: target.target.address.socketAddress, data: buffer), promise: nil)
        let delay = NotifyMessage.backoff(attempt: attempt)
        let retry = loop.scheduleTask(in: .seconds(Int64(delay))) { [self] in
            guard pending[target]?.id == id else { return }
            logger.notice("NOTIFY not acknowledged, sending again", metadata: [
                "dns.secondary": "\(target.target.secondary)", "dns.notify": "\(target.target.address)", "dns.zone": "\(target.apex)",
                "dns.attempt": "\(attempt + 2)",
            ])
            Counter(label: "zonelink_dns_notify_total", dimensions: [("result", "retried")]).increment()
            send(target, soa: soa, key: key, attempt: attempt + 1)
        }
        pending[target] = Pending(id: id, mac: mac, key: key, soa: soa, attempt: attempt, retry: retry)
        byID[id] = target
        if attempt == 0 {
            let serial = TransferZone(apex: target.apex, soa: soa, records: []).serial
            logger.info("NOTIFY sent", metadata: [
                "dns.secondary": "\(target.target.secondary)", "dns.notify": "\(target.target.address)", "dns.zone": "\(target.apex)",
                "dns.serial": "\(serial)",
            ])
            Counter(label: "zonelink_dns_notify_total", dimensions: [("result", "sent")]).increment()
        }
    }

    /// A datagram on the NOTIFY socket: an acknowledgement when it matches a pending NOTIFY
    /// from that secondary's address and is signed; anything else is dropped.
    fileprivate func received(_ bytes: [UInt8], from source: IPv4Endpoint?) {
        guard bytes.count >= 12 else { return }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard let target = byID[id], let waiting = pending[target], target.target.address == source,
              NotifyMessage.isAcknowledgement(bytes, id: id, key: waiting.key, requestMAC: waiting.mac, now: UInt64(time(nil)))
        else { return }
        waiting.retry?.cancel()
        pending[target] = nil
        byID[id] = nil
        logger.info("NOTIFY acknowledged", metadata: [
            "dns.secondary": "\(target.target.secondary)", "dns.notify": "\(target.target.address)", "dns.zone": "\(target.apex)",
        ])
        Counter(label: "zonelink_dns_notify_total", dimensions: [("result", "acknowledged")]).increment()
    }

    /// NOTIFYs waiting for their acknowledgement, for tests.
    public var unacknowledged: Int {
        get async { (try? await loop.submit { self.pending.count }.get()) ?? 0 }
    }

    private final class AcknowledgementHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let notifier: TransferNotifier

        init(notifier: TransferNotifier) { self.notifier = notifier }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            notifier.received(Array(envelope.data.readableBytesView), from: envelope.remoteAddress.ipv4Endpoint)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            // An ICMP port unreachable from a secondary that is down: the retry covers it.
        }
    }
}
