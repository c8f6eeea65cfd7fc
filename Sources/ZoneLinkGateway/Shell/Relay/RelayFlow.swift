import CZoneLinkSystem
import Glibc
import ZoneLinkCore

/// One socket of a relayed TCP flow, as its worker sees it.
///
/// The sockets are registered edge-triggered, so readiness is remembered here: `readable` and
/// `writable` are set by epoll and cleared when a call would block.
struct RelaySocket {
    var fd: Int32
    var readable = false
    var writable = false
    /// epoll reported the peer's FIN (or an error): read until a read says so, even after a
    /// short read, because that event will not come again.
    var hungUp = false
    /// epoll reported the peer's FIN without an error (EPOLLRDHUP): everything the peer sent
    /// before it is already queued, so a short read has taken the last of it and the input is
    /// closed; no read that returns 0 is needed to learn that.
    var finReceived = false
    /// The peer sent FIN (a read returned 0): nothing more comes from this socket.
    var inputClosed = false
    /// We sent FIN (shutdown for writing): nothing more goes to this socket.
    var outputClosed = false
    /// Bytes read from the other socket that this one would not take yet (at most one read),
    /// or, on the provider side of a new flow, the PROXY v2 header still to be written.
    /// While any wait, the other socket is not read: the kernel's buffers are the back-pressure.
    /// Allocated only while something waits, so an idle or flowing socket holds no memory.
    var pending: [UInt8] = []
    var pendingOffset = 0
    /// Bytes read from this socket not yet reported to the NAT table.
    var unreported = 0
    /// Bytes read from this socket since the flow began (once it is spliced, no more are read:
    /// this is then what came before the splice).
    var read = 0
    /// Spliced (`RelaySplicing`): what this socket receives goes to its peer inside the kernel
    /// and is never read here; only its end is watched.
    var spliced = false
    /// Spliced: the bytes the kernel redirected, as last counted from TCP_INFO.
    var redirectedCounted: UInt64 = 0
    /// The bytes written to this socket when its peer's input was spliced (by this relay).
    var writtenBeforeSplice: UInt64 = 0

    init(fd: Int32) { self.fd = fd }

    /// Remembers what epoll reported for this socket (edge-triggered: it will not say it again).
    mutating func note(readable: Bool, writable: Bool, hungUp: Bool, finReceived: Bool, failed: Bool) {
        if readable { self.readable = true }
        if writable { self.writable = true }
        if hungUp { self.hungUp = true }
        if finReceived { self.finReceived = true } else if failed { self.finReceived = false }
    }

    var hasPending: Bool { pendingOffset < pending.count }

    /// Open both ways with nothing waiting: no bytes or header kept, no FIN or error seen.
    var isQuiet: Bool { !hasPending && !inputClosed && !outputClosed && !hungUp && !finReceived }
}

/// A TCP flow between a consumer's client and a provider target, relayed by one worker:
/// what one socket reads, the other writes; a FIN is passed on as a FIN once everything before
/// it is written (half-close both ways); an error on either socket ends both.
final class RelayFlow {
    /// Descriptors a flow holds: the client's socket and the provider side's.
    static let descriptors = 2

    let key: FlowKey
    let route: ENIRoute
    /// The flow's decision: connecting until the provider side's non-blocking connect
    /// completes, then open; it knows what to give back when the flow ends.
    var opening: FlowOpening
    var client: RelaySocket
    var provider: RelaySocket
    /// The endpoint connection's bandwidth cap (`connectionBandwidth`); nil: no cap.
    let bandwidth: ConnectionBandwidth?
    /// When the cap lets a direction this flow paused read again; nil while none is paused.
    var throttledUntil: ContinuousClock.Instant?
    /// The wake-up the worker has scheduled for this flow, if any.
    var wakeAt: ContinuousClock.Instant?
    /// Turns of the conversation so far (the side that sent bytes changed), counted until
    /// the flow is spliced: 2 × `gateway.spliceAfterExchanges` turns make it a candidate.
    private(set) var turns = 0
    private var lastSpeaker: FlowDirection?
    /// The flow has been offered to the kernel (`RelaySplicing.splice`), spliced or not, or
    /// splicing was refused: the worker asks once per flow.
    var spliceTried = false
    /// A spliced input's FIN has come in while the kernel still holds some of its bytes: the
    /// worker calls `advance` again shortly (a FIN passed on before them would lose them).
    private(set) var waitsForKernel = false

    var connected: Bool { opening.isOpen }

    /// `preamble`: bytes the provider side gets before any byte of the client (the PROXY v2
    /// header, or nothing). They wait as that side's leftovers: written once the connect
    /// completes, in as many sends as the socket needs, and the client is not read until the
    /// last of them is gone, so no client byte can overtake them.
    init(key: FlowKey, route: ENIRoute, opening: FlowOpening, client: Int32, provider: Int32, preamble: [UInt8] = []) {
        self.key = key
        self.route = route
        self.opening = opening
        self.client = RelaySocket(fd: client)
        self.provider = RelaySocket(fd: provider)
        self.provider.pending = preamble
        self.bandwidth = route.bandwidth
    }

    /// Moves whatever can move now, both ways. False when the flow is over: both directions
    /// ended, or a socket failed.
    /// Under a bandwidth cap a direction whose bucket is empty stops reading and
    /// `throttledUntil` says when to call again.
    func advance(buffer: UnsafeMutableRawBufferPointer, now: ContinuousClock.Instant) -> Bool {
        // Worked on as locals and stored back once: every access to a class's stored property
        // is checked for exclusivity at run time, and passing the sockets `inout` through the
        // steps below would cost a dozen such checks per wake-up.
        var client = self.client, provider = self.provider
        var throttled: ContinuousClock.Instant?
        defer { (self.client, self.provider, self.throttledUntil) = (client, provider, throttled) }
        let (clientRead, providerRead) = (client.read, provider.read)
        var waits = false
        guard Self.settleSplicedEnd(of: &client, into: provider, waits: &waits),
              Self.settleSplicedEnd(of: &provider, into: client, waits: &waits),
              Self.flush(&provider), Self.flush(&client),
              Self.pump(from: &client, to: &provider, buffer: buffer, cap: bandwidth, .clientToTarget, now: now, throttled: &throttled),
              Self.pump(from: &provider, to: &client, buffer: buffer, cap: bandwidth, .targetToClient, now: now, throttled: &throttled)
        else { return false }
        waitsForKernel = waits
        if client.read > clientRead { countTurn(.clientToTarget) }
        if provider.read > providerRead { countTurn(.targetToClient) }
        return !(client.inputClosed && provider.outputClosed && provider.inputClosed && client.outputClosed)
    }

    private func countTurn(_ speaker: FlowDirection) {
        guard lastSpeaker != speaker else { return }
        lastSpeaker = speaker
        turns += 1
    }

    /// Whether to offer the flow to the kernel now: its route splices after `exchanges`
    /// request–answer exchanges, it has had them, it has no bandwidth cap (which needs the
    /// bytes here), and nothing is half-done: no bytes or PROXY header waiting, no FIN or error.
    var readyToSplice: Bool {
        guard !spliceTried, let exchanges = route.spliceAfterExchanges, bandwidth == nil, connected,
              turns >= 2 * exchanges else { return false }
        return client.isQuiet && provider.isQuiet
    }

    /// A spliced input's end: once its FIN is in and the kernel has written every byte before
    /// it to `sink`, the input is closed (`pump` then passes the FIN on). Until then `waits`.
    /// An error or a hang-up without a FIN ends the flow (false).
    private static func settleSplicedEnd(of source: inout RelaySocket, into sink: RelaySocket, waits: inout Bool) -> Bool {
        guard source.spliced, source.hungUp || source.finReceived, !source.inputClosed else { return true }
        guard source.finReceived else { return false }
        var received: UInt64 = 0, sinkWritten: UInt64 = 0
        guard zl_tcp_counts(source.fd, &received, nil) == 0, zl_tcp_counts(sink.fd, nil, &sinkWritten) == 0 else { return false }
        // `received` counts the FIN as one byte.
        if received &- 1 &- UInt64(source.read) <= sinkWritten &- sink.writtenBeforeSplice {
            source.inputClosed = true
        } else {
            waits = true
        }
        return true
    }

    /// Reports the bytes counted since the last report to the NAT table; a spliced socket's
    /// from TCP_INFO first.
    func report() {
        if client.spliced { Self.countRedirected(&client) }
        if provider.spliced { Self.countRedirected(&provider) }
        guard client.unreported > 0 || provider.unreported > 0 else { return }
        route.flows.recordTraffic(key, fromClient: client.unreported, fromTarget: provider.unreported)
        client.unreported = 0
        provider.unreported = 0
    }

    /// Adds the bytes the kernel redirected from a spliced socket since the last count.
    private static func countRedirected(_ socket: inout RelaySocket) {
        var received: UInt64 = 0
        guard zl_tcp_counts(socket.fd, &received, nil) == 0 else { return }
        // After the FIN, `received` counts it as one byte more than came.
        let ended = socket.finReceived || socket.inputClosed
        let redirected = received &- UInt64(socket.read) &- (ended ? 1 : 0)
        guard redirected > socket.redirectedCounted, redirected < UInt64(Int.max) else { return }
        socket.unreported += Int(redirected - socket.redirectedCounted)
        socket.redirectedCounted = redirected
    }

    /// Reads from `source` and writes to `sink` until `source` has nothing more, `sink` is
    /// full, `source` sent FIN (passed on once `sink` has taken everything), or the cap's
    /// bucket for `direction` is empty (`throttled`: when it will have refilled). False: an error.
    private static func pump(
        from source: inout RelaySocket, to sink: inout RelaySocket, buffer: UnsafeMutableRawBufferPointer,
        cap: ConnectionBandwidth?, _ direction: FlowDirection, now: ContinuousClock.Instant,
        throttled: inout ContinuousClock.Instant?
    ) -> Bool {
        while source.readable && !source.spliced && !source.inputClosed && !sink.hasPending {
            var wanted = buffer.count
            if let cap {
                let (granted, retry) = cap.take(direction, upTo: wanted, at: now)
                guard granted > 0 else {
                    throttled = min(throttled ?? retry, retry)
                    break
                }
                wanted = granted
            }
            let count = read(source.fd, buffer.baseAddress, wanted)
            // Kept before the cap's lock can touch errno.
            let readError = count < 0 ? errno : 0
            if let cap, count < wanted { cap.giveBack(direction, wanted - max(0, count)) }
            if count > 0 {
                source.unreported += count
                source.read += count
                if count < wanted {
                    // A short read emptied the socket. After the peer's FIN that is the end of
                    // its input. Otherwise more data will raise a new edge; but a FIN or an error
                    // that came with the data raised its edge already, so keep reading then.
                    if source.finReceived {
                        source.inputClosed = true
                    } else if !source.hungUp {
                        source.readable = false
                    }
                }
                // The last bytes before a FIN are sent with MSG_MORE: the shutdown (or close)
                // just below adds the FIN to the same segment, one packet instead of two.
                guard write(UnsafeRawBufferPointer(rebasing: buffer[..<count]), to: &sink, finFollows: source.inputClosed)
                else { return false }
            } else if count == 0 {
                source.inputClosed = true
            } else if readError == EAGAIN || readError == EWOULDBLOCK {
                source.readable = false
            } else if readError != EINTR {
                return false
            }
        }
        if source.inputClosed && !sink.hasPending && !sink.outputClosed {
            sink.outputClosed = true
            // When the other direction has ended too, the flow ends now and closing the socket
            // sends this FIN (its input was read to the end, so the close is no reset): no
            // shutdown call. ENOTCONN: the peer is already gone; the read side will tell.
            if !(sink.inputClosed && source.outputClosed) { _ = shutdown(sink.fd, Int32(SHUT_WR)) }
        }
        return true
    }

    /// Writes `bytes` to `sink`, keeping what it will not take now. False: an error.
    /// `finFollows`: these are the last bytes before a FIN, which the caller sends as soon as
    /// they are all written (MSG_MORE holds them for it; bytes kept for later go out plain).
    private static func write(_ bytes: UnsafeRawBufferPointer, to sink: inout RelaySocket, finFollows: Bool = false) -> Bool {
        let flags = Int32(MSG_NOSIGNAL) | (finFollows ? Int32(MSG_MORE) : 0)
        var offset = 0
        while offset < bytes.count {
            let sent = send(sink.fd, bytes.baseAddress! + offset, bytes.count - offset, flags)
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                sink.writable = false
                sink.pending = Array(bytes[offset...])
                sink.pendingOffset = 0
                return true
            } else if sent < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// Writes what `sink` kept, if it can take more now. False: an error.
    private static func flush(_ sink: inout RelaySocket) -> Bool {
        while sink.hasPending && sink.writable {
            let (fd, offset) = (sink.fd, sink.pendingOffset)
            let sent = sink.pending.withUnsafeBytes { bytes in
                send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                sink.pendingOffset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                sink.writable = false
            } else if sent < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        if !sink.hasPending && !sink.pending.isEmpty {
            sink.pending = []
            sink.pendingOffset = 0
        }
        return true
    }
}
