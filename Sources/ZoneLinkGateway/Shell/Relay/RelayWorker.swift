import CZoneLinkSystem
import Glibc
import Logging
import ZoneLinkCore
import ZoneLinkNetwork

/// One thread of the TCP relay: accepts on every ENI listener (the kernel wakes one worker
/// per new connection, EPOLLEXCLUSIVE), admits the connection, picks a target, takes a NAT
/// port, connects from it inside the provider's namespace, and relays both sockets until both
/// directions have ended. One epoll, one read buffer, no allocation per read.
///
/// This is the I/O shell around the pure core: `FlowOpening` decides each new flow (admission,
/// descriptors, target, NAT port, connect, refusal) and this carries out its steps. SwiftNIO's
/// channels cost about 40 µs of CPU per relayed connection here (two pipelines, futures, and
/// a dozen epoll_ctl and getsockname calls), where the kernel's share is about 70 µs; this
/// loop makes one epoll_ctl per socket and none per read or write.
///
/// Provider sockets must be made inside the provider's namespace, and a socket belongs to the
/// namespace of the thread that makes it: the worker `enter`s the namespace it needs next
/// (a no-op when it is already there, which with one provider VPC is always).
///
/// All state is this thread's own; other threads reach it only through `RelayMailbox`.
final class RelayWorker {
    /// One read's worth: large reads and sends halve the syscalls of a bulk transfer (iperf3
    /// through the relay: 13 → 18 Gbit/s against 64 KiB). Also the most a stalled direction
    /// holds in user space.
    static let bufferSize = 256 * 1024
    /// Connections accepted from one listener per wake-up, so one busy listener cannot starve
    /// the flows already open.
    static let acceptBatch = 64

    private let epoll: Int32
    private let mailbox: RelayMailbox
    /// The kernel shortcut for long-lived flows (its maps made when first needed).
    private let splicing: RelaySplicingLoader
    /// Spliced flows whose FIN waits for the kernel to write the bytes before it, and when
    /// each is checked again: after 1 ms, then twice as long each time up to a second, so that
    /// peers that stop reading (the kernel cannot write to them) cost a check a second each.
    private var waitingForKernel: [RelayFlowID: (due: Moment, delay: Duration)] = [:]

    /// How long until a waiting FIN is checked again, after the check that waited `previous`
    /// (nil: the first): 1 ms, doubled each time, at most a second.
    static func kernelCheckDelay(after previous: Duration?) -> Duration {
        previous.map { min($0 * 2, .seconds(1)) } ?? .milliseconds(1)
    }
    private let logger: Logger
    private let buffer: UnsafeMutableRawBufferPointer
    private var listeners: [Int: ListeningSocket] = [:]
    private var flows: [RelayFlow?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    /// Connects in flight, oldest first (every one has the same timeout).
    private var connecting: [(deadline: Moment, id: RelayFlowID)] = []
    private var connectingHead = 0
    /// The namespace this thread is in now: the provider sockets it makes go there.
    private var namespace: NetworkNamespace?
    /// What this worker's times are measured from; `now` is read once per wake-up.
    private let origin = ContinuousClock.now
    private var now: Moment = .zero
    /// Flows in `flows` (the rest are free slots).
    private var liveFlows = 0
    /// When the byte counts of every flow next go to the NAT table.
    private var nextReport: Moment = .zero
    /// Flows paused by their bandwidth cap, and when each may read again (unordered: a
    /// wake-up scans them; an entry whose flow was rescheduled or ended is skipped).
    private var throttled: [(until: ContinuousClock.Instant, id: RelayFlowID)] = []
    /// A descriptor held in reserve for when the process runs out of them (EMFILE): given up to
    /// accept and reset the waiting connection, so that the listener does not stay readable
    /// and spin the worker.
    private var spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    private var lastShedWarning: Moment?

    init(epoll: Int32, mailbox: RelayMailbox, splicing: RelaySplicingLoader, logger: Logger) {
        self.epoll = epoll
        self.mailbox = mailbox
        self.splicing = splicing
        self.logger = logger
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        if spareFD >= 0 { close(spareFD) }
    }

    /// Serves until told to stop, then closes every flow it holds.
    func run() {
        let capacity = 256
        let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        let events = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        defer {
            tokens.deallocate()
            events.deallocate()
        }
        _ = zl_epoll_add(epoll, mailbox.wakeFD, zl_epollin, Token.wake.value)
        var running = true
        while running {
            let count = zl_epoll_wait(epoll, tokens, events, Int32(capacity), waitTimeout())
            now = ContinuousClock.now - origin
            for i in 0..<max(0, Int(count)) {
                switch Token(tokens[i]) {
                case .wake: running = obey(mailbox.take()) && running
                case .listener(let id): if let listener = listeners[id] { accept(from: listener) }
                case .client(let id): ready(id, client: true, events: events[i])
                case .provider(let id): ready(id, client: false, events: events[i])
                }
            }
            expireConnects()
            resumeWaitingForKernel()
            resumeThrottled()
            reportTraffic()
        }
        for slot in flows.indices {
            if let flow = flows[slot] { end(flow, RelayFlowID(slot: slot, generation: generations[slot])) }
        }
    }

    // MARK: Commands

    /// False once told to stop.
    private func obey(_ commands: [RelayCommand]) -> Bool {
        var running = true
        for command in commands {
            switch command {
            case .listen(let socket):
                listeners[socket.id] = socket
                if zl_epoll_add(epoll, socket.fd, zl_epollin | zl_epollexclusive, Token.listener(socket.id).value) != 0 {
                    logger.error("cannot watch ENI listener", metadata: [
                        "flow.eni": "\(socket.route.current.listener.address)", "error": "\(SocketCall.errorText(errno))",
                    ])
                }
            case .unlisten(let socket, let done):
                _ = zl_epoll_delete(epoll, socket.fd)
                listeners[socket.id] = nil
                done()
            case .close(let id):
                // Cut from outside (its endpoint, zone or port went, or it expired): a reset
                // ends it at once on both sides, where a FIN would first deliver what the
                // socket buffers still hold, seconds of a slow reader's data.
                if let flow = flow(id) {
                    SocketCall.resetOnClose(flow.client.fd)
                    SocketCall.resetOnClose(flow.provider.fd)
                    end(flow, id)
                }
            case .stop:
                running = false
            }
        }
        return running
    }

    // MARK: New connections

    private func accept(from listener: ListeningSocket) {
        for _ in 0..<Self.acceptBatch {
            var peer = sockaddr_in()
            let fd = zl_accept(listener.fd, &peer)
            if fd >= 0 {
                start(fd, client: IPv4Endpoint(peer), eni: listener.address, route: listener.route.current)
            } else if errno == EINTR || errno == ECONNABORTED {
                continue
            } else if errno == EMFILE || errno == ENFILE {
                shed(listener)
            } else {
                if errno != EAGAIN && errno != EWOULDBLOCK {
                    logger.warning("accept failed", metadata: [
                        "flow.eni": "\(listener.route.current.listener.address)", "error": "\(SocketCall.errorText(errno))",
                    ])
                }
                return
            }
        }
    }

    /// Out of descriptors: resets the oldest waiting connection with the reserve descriptor.
    private func shed(_ listener: ListeningSocket) {
        if spareFD >= 0 { close(spareFD) }
        var peer = sockaddr_in()
        let fd = zl_accept(listener.fd, &peer)
        if fd >= 0 { SocketCall.reset(fd) }
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if lastShedWarning.map({ now - $0 >= .seconds(10) }) ?? true {
            lastShedWarning = now
            logger.warning("out of file descriptors: new connections are reset (raise the limit, e.g. LimitNOFILE=)", metadata: [
                "flow.eni": "\(listener.route.current.listener.address)", "flows": "\(liveFlows)",
            ])
        }
    }

    /// Opens a flow for a connection accepted at an ENI, as `FlowOpening` decides, or resets it.
    ///
    /// A flow takes its two descriptors (the accepted one and the provider side's) from the
    /// budget first: when the client share is spent, the connection is reset at once, so a
    /// flood never reaches the reserve that health probes and the control API live on.
    private func start(_ clientFD: Int32, client: IPv4Endpoint, eni: IPv4Endpoint, route: ENIRoute) {
        let key = FlowKey(proto: .tcp, vpc: route.listener.vpc, client: client, eni: route.listener.address)
        var opening = FlowOpening(descriptors: RelayFlow.descriptors)
        var step = route.open(key, &opening, now: now)
        while case .connect(let nat, let target) = step {
            switch connect(from: nat, to: target, in: route.provider) {
            case .success(let providerFD):
                // (The accepted socket has TCP_NODELAY from its listener.)
                return watch(RelayFlow(
                    key: key, route: route, opening: opening, client: clientFD, provider: providerFD,
                    preamble: proxyHeader(for: client, eni: eni, route: route)))
            case .failure(let error):
                step = route.carry(
                    opening.connectFailed(portInUse: error.errno == EADDRINUSE, reason: "\(error)"), for: key, &opening, now: now)
            }
        }
        refuse(clientFD, route, step.refusal.map { "\($0)" } ?? "\(step)")
    }

    /// The PROXY v2 header a flow from `client` starts with when its service asks for one;
    /// nothing otherwise. The destination is where the client connected, `eni`: the listening
    /// socket's own address, bound to the ENI's address and port, never a wildcard (so no
    /// getsockname per connection).
    private func proxyHeader(for client: IPv4Endpoint, eni: IPv4Endpoint, route: ENIRoute) -> [UInt8] {
        guard let identity = route.listener.proxyIdentity else { return [] }
        return ProxyHeader.proxy(client: client, eni: eni, identity: identity)
    }

    /// A non-blocking connect from `nat` to `target`, made inside `provider`.
    private func connect(from nat: IPv4Endpoint, to target: IPv4Endpoint, in provider: NetworkNamespace) -> Result<Int32, ListenError> {
        if namespace !== provider {
            guard provider.enter() else { return .failure(ListenError(errno: errno)) }
            namespace = provider
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(ListenError(errno: errno)) }
        SocketCall.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        SocketCall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        guard SocketCall.bind(fd, to: nat) == 0, SocketCall.connect(fd, to: target) == 0 || errno == EINPROGRESS else {
            let error = ListenError(errno: errno)
            close(fd)
            return .failure(error)
        }
        return .success(fd)
    }

    private func refuse(_ fd: Int32, _ route: ENIRoute, _ why: String) {
        route.logger.debug("connection reset", metadata: ["flow.eni": "\(route.listener.address)", "flow.reason": "\(why)"])
        SocketCall.reset(fd)
    }

    /// Gives the flow a slot and watches both sockets, edge-triggered, for everything at once:
    /// no epoll_ctl is needed again until they close.
    private func watch(_ flow: RelayFlow) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = flows.count
            flows.append(nil)
            generations.append(0)
        }
        let id = RelayFlowID(slot: slot, generation: generations[slot])
        flows[slot] = flow
        liveFlows += 1
        let interest = zl_epollin | zl_epollout | zl_epollrdhup | zl_epollet
        guard zl_epoll_add(epoll, flow.client.fd, interest, Token.client(id).value) == 0,
              zl_epoll_add(epoll, flow.provider.fd, interest, Token.provider(id).value) == 0
        else {
            flow.route.logger.warning("cannot watch a flow's sockets", metadata: ["flow.key": "\(flow.key)", "error": "\(SocketCall.errorText(errno))"])
            return end(flow, id)
        }
        connecting.append((flow.opening.connectDeadline ?? now, id))
    }

    // MARK: Established flows

    private func ready(_ id: RelayFlowID, client: Bool, events: UInt32) {
        guard let flow = flow(id) else { return }
        let readable = events & (zl_epollin | zl_epollrdhup | zl_epollhup | zl_epollerr) != 0
        let writable = events & (zl_epollout | zl_epollhup | zl_epollerr) != 0
        let hungUp = events & (zl_epollrdhup | zl_epollhup | zl_epollerr) != 0
        // The peer's FIN, clean: a short read then ends the input (`RelaySocket.finReceived`).
        // After an error, reads go on until one returns it.
        let failed = events & zl_epollerr != 0
        let finReceived = events & zl_epollrdhup != 0 && !failed
        if client {
            flow.client.note(readable: readable, writable: writable, hungUp: hungUp, finReceived: finReceived, failed: failed)
        } else {
            flow.provider.note(readable: readable, writable: writable, hungUp: hungUp, finReceived: finReceived, failed: failed)
        }
        if !flow.connected {
            guard !client, writable else { return }
            if events & (zl_epollerr | zl_epollhup) != 0 {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(flow.provider.fd, SOL_SOCKET, SO_ERROR, &code, &length)
                // Not retried on another port: bind and connect already took it.
                let error = ListenError(errno: code == 0 ? ECONNREFUSED : code)
                return failConnect(flow, id, flow.opening.connectFailed(portInUse: false, reason: "\(error)"))
            }
            _ = flow.opening.connected()
            flow.route.flows.attach(flow.key) { [mailbox] in mailbox.post(.close(id)) }
        }
        advance(flow, id)
    }

    /// Moves what the flow can move now; schedules a wake-up when its cap paused it or the
    /// kernel still holds bytes before a FIN; splices it once it is due.
    private func advance(_ flow: RelayFlow, _ id: RelayFlowID) {
        guard flow.advance(buffer: buffer, now: origin + now) else { return end(flow, id) }
        if let until = flow.throttledUntil, flow.wakeAt.map({ until < $0 }) ?? true {
            flow.wakeAt = until
            throttled.append((until, id))
        }
        if flow.waitsForKernel {
            splicing.loaded?.noteFinWait()
            let delay = Self.kernelCheckDelay(after: waitingForKernel[id]?.delay)
            waitingForKernel[id] = (now + delay, delay)
        } else if !waitingForKernel.isEmpty {
            waitingForKernel[id] = nil
        }
        if flow.readyToSplice {
            flow.spliceTried = true
            if let maps = splicing.maps(), maps.splice(flow), flow.client.spliced && flow.provider.spliced {
                // Both inputs are the kernel's: only the ends concern this worker now.
                let interest = zl_epollrdhup | zl_epollet
                _ = zl_epoll_modify(epoll, flow.client.fd, interest, Token.client(id).value)
                _ = zl_epoll_modify(epoll, flow.provider.fd, interest, Token.provider(id).value)
            }
        }
    }

    /// Advances the spliced flows whose FIN waits for the kernel and whose check is due.
    private func resumeWaitingForKernel() {
        guard !waitingForKernel.isEmpty else { return }
        for (id, entry) in waitingForKernel where entry.due <= now {
            if let flow = flow(id), flow.waitsForKernel { advance(flow, id) } else { waitingForKernel[id] = nil }
        }
    }

    /// Advances the flows whose cap has refilled.
    private func resumeThrottled() {
        guard !throttled.isEmpty else { return }
        let instant = origin + now
        var due: [RelayFlowID] = []
        throttled.removeAll { entry in
            guard entry.until <= instant else { return false }
            due.append(entry.id)
            return true
        }
        for id in due {
            guard let flow = flow(id), let wake = flow.wakeAt, wake <= instant else { continue }
            flow.wakeAt = nil
            advance(flow, id)
        }
    }

    /// Ends a flow whose provider side could not be connected (`refusal`, a `.refuse` step).
    private func failConnect(_ flow: RelayFlow, _ id: RelayFlowID, _ refusal: FlowStep) {
        flow.route.logger.debug("connection reset", metadata: [
            "flow.eni": "\(flow.route.listener.address)",
            "flow.reason": "\(refusal.refusal.map { "\($0)" } ?? "\(refusal)")",
        ])
        // A reset tells the client at once, as a refusing backend would have.
        SocketCall.resetOnClose(flow.client.fd)
        end(flow, id)
        flow.route.settle(refusal, for: flow.key)
    }

    private func expireConnects() {
        while connectingHead < connecting.count, connecting[connectingHead].deadline <= now {
            let id = connecting[connectingHead].id
            connectingHead += 1
            if let flow = flow(id), let refusal = flow.opening.expire(now: now) { failConnect(flow, id, refusal) }
        }
        if connectingHead == connecting.count {
            connecting.removeAll(keepingCapacity: true)
            connectingHead = 0
        } else if connectingHead > 1024 {
            connecting.removeFirst(connectingHead)
            connectingHead = 0
        }
    }

    /// Once a second, every flow's byte counts go to the NAT table, whose idle clock and
    /// `nat list` need no finer grain: a busy flow takes the table's lock once a second, not
    /// once per read. (Not on events alone: a flow waiting on a slow reader may see none for
    /// many seconds while its bytes are on their way.)
    private func reportTraffic() {
        guard now >= nextReport else { return }
        nextReport = now + .seconds(1)
        for case let flow? in flows { flow.report() }
    }

    /// Milliseconds until the oldest connect times out or the next traffic report is due; -1
    /// (wait for events) when neither is.
    private func waitTimeout() -> Int32 {
        var deadline: Moment?
        if connectingHead < connecting.count { deadline = connecting[connectingHead].deadline }
        if liveFlows > 0 { deadline = min(deadline ?? nextReport, nextReport) }
        if let wake = throttled.lazy.map(\.until).min() { deadline = min(deadline ?? (wake - origin), wake - origin) }
        if let due = waitingForKernel.values.lazy.map(\.due).min() { deadline = min(deadline ?? due, due) }
        guard let deadline else { return -1 }
        let (seconds, attoseconds) = (deadline - (ContinuousClock.now - origin)).components
        return Int32(clamping: max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1))
    }

    /// Closes both sockets (closing also drops them from epoll) and forgets the flow.
    private func end(_ flow: RelayFlow, _ id: RelayFlowID) {
        flow.report()
        close(flow.client.fd)
        close(flow.provider.fd)
        flow.route.settle(flow.opening.end(), for: flow.key)
        if !waitingForKernel.isEmpty { waitingForKernel[id] = nil }
        flows[id.slot] = nil
        liveFlows -= 1
        generations[id.slot] = (generations[id.slot] &+ 1) & Token.generationMask
        freeSlots.append(id.slot)
    }

    private func flow(_ id: RelayFlowID) -> RelayFlow? {
        guard id.slot < flows.count, generations[id.slot] == id.generation else { return nil }
        return flows[id.slot]
    }
}

/// What an epoll event is about, packed into its 64-bit data: the kind in the low 2 bits, then
/// a listener's ID, or a flow's slot (32 bits) and generation (30 bits).
enum Token: Equatable {
    case wake
    case listener(Int)
    case client(RelayFlowID)
    case provider(RelayFlowID)

    static let generationMask: UInt32 = (1 << 30) - 1

    init(_ value: UInt64) {
        let id = RelayFlowID(slot: Int((value >> 2) & 0xFFFF_FFFF), generation: UInt32(value >> 34))
        switch value & 3 {
        case 0: self = .wake
        case 1: self = .listener(Int(value >> 2))
        case 2: self = .client(id)
        default: self = .provider(id)
        }
    }

    var value: UInt64 {
        switch self {
        case .wake: 0
        case .listener(let id): UInt64(id) << 2 | 1
        case .client(let id): UInt64(id.generation) << 34 | UInt64(id.slot) << 2 | 2
        case .provider(let id): UInt64(id.generation) << 34 | UInt64(id.slot) << 2 | 3
        }
    }
}
