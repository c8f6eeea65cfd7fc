import CZoneLinkSystem
import Glibc
import NIOCore
import Synchronization
import ZoneLinkCore
import ZoneLinkNetwork

/// A bound UDP socket and whose clients it serves.
struct DatagramSocket: Sendable {
    let fd: Int32
    let address: IPv4Endpoint
    let context: ListenerContext
    /// Whether `dns.rateLimit` applies to its answers (`dns.listen[].rateLimit`).
    let rateLimited: Bool
}

/// Tells worker threads to finish; they look at it at least every `DatagramWorker.pollTimeout`
/// (their poll's timeout, or their socket's receive timeout).
final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    func stop() { stopped.store(true, ordering: .releasing) }
    var isStopped: Bool { stopped.load(ordering: .acquiring) }
}

/// Serves DNS over UDP on a set of sockets from one dedicated thread: `recvmmsg` reads up to
/// `batch` datagrams, each is answered into a reused buffer, and `sendmmsg` sends the answers
/// in one call. Nothing is allocated per datagram. A worker with one socket (the usual case:
/// one listener) waits in `recvmmsg` itself, which returns once a datagram is there
/// (`MSG_WAITFORONE`) or the socket's receive timeout (`pollTimeout`) passes: two system calls
/// per wakeup, where poll-then-read took three, and at a light load a wakeup is a datagram or
/// two. With several sockets, poll says which have datagrams.
///
/// This is the I/O shell around `Responder` for the hot path; SwiftNIO's datagram channel
/// costs about a microsecond per datagram in envelopes and address strings, which is most of
/// what answering costs. TCP stays on NIO. All mutable state is local to `run`, on its thread.
///
/// Response-rate limiting: each worker keeps its own `ResponseRateLimiter` table (no lock, no
/// shared memory per answer). The kernel spreads clients over workers by address and port, so
/// one client's queries from one socket meet one table; a client spreading its queries over
/// many source ports can get up to `workers` times `responsesPerSecond` through. The table
/// follows `dns.rateLimit` of the catalog in force.
enum DatagramWorker {
    static let batch = 64
    /// Room per datagram: a query larger than this is cut (MSG_TRUNC) and dropped.
    static let slotSize = 4096
    static let pollTimeout: Int32 = 200  // milliseconds

    static func run(worker: Int, table: SocketTable, publisher: ResponderPublisher, stop: StopSignal) {
        var counts = QueryCounts()
        defer { counts.flushIfDue(force: true) }
        serve(worker: worker, table: table, publisher: publisher, stop: stop, counts: &counts)
    }

    private static func serve(
        worker: Int, table: SocketTable, publisher: ResponderPublisher, stop: StopSignal, counts: inout QueryCounts
    ) {
        // A worker holds one socket per listener: a handful, which poll serves as well as epoll.
        var sockets: [DatagramSocket] = []
        var watched: [pollfd] = []
        var known = -1
        let received = UnsafeMutableRawBufferPointer.allocate(byteCount: batch * slotSize, alignment: 16)
        let replies = UnsafeMutableRawBufferPointer.allocate(byteCount: batch * slotSize, alignment: 16)
        let peers = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: batch)
        let receiveVectors = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
        let sendVectors = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
        let receiveHeaders = UnsafeMutablePointer<zl_mmsghdr>.allocate(capacity: batch)
        let sendHeaders = UnsafeMutablePointer<zl_mmsghdr>.allocate(capacity: batch)
        defer {
            received.deallocate()
            replies.deallocate()
            peers.deallocate()
            receiveVectors.deallocate()
            sendVectors.deallocate()
            receiveHeaders.deallocate()
            sendHeaders.deallocate()
        }
        for i in 0..<batch {
            receiveVectors[i] = iovec(iov_base: received.baseAddress! + i * slotSize, iov_len: slotSize)
            receiveHeaders[i] = zl_mmsghdr(msg_hdr: msghdr(), msg_len: 0)
        }
        let addressLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        /// Readies receive headers `0..<count` for the next `recvmmsg`, which changed them.
        func resetReceiveHeaders(_ count: Int) {
            for i in 0..<count {
                receiveHeaders[i].msg_hdr = msghdr(
                    msg_name: UnsafeMutableRawPointer(peers + i), msg_namelen: addressLength,
                    msg_iov: receiveVectors + i, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0)
            }
        }
        // At light load a batch is a datagram or two: only the headers a call used are reset.
        resetReceiveHeaders(batch)

        var responder = publisher.responder
        var generation = -1
        var output = ByteBufferAllocator().buffer(capacity: slotSize)
        var limiter = ResponseRateLimiter(settings: responder.engine.catalog.dns.rateLimit)
        // This worker's prepared answers: repeated questions skip parsing, deciding and encoding.
        let prepared = PreparedAnswers.enabled ? PreparedAnswers.sizedFromCatalog() : nil
        let origin = ContinuousClock.now

        while !stop.isStopped {
            counts.flushIfDue()
            // An idle worker (its wait ends every `pollTimeout`) moves to a newly published
            // responder too, so that the one a reload replaced, a whole catalog's engine, is
            // freed within that time rather than at this worker's next datagram.
            if publisher.refresh(&responder, seen: &generation) { prepared?.follow(responder) }
            if let current = table.refresh(worker: worker, known: &known) {
                sockets = current
                watched = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            }
            let waitsInReceive = sockets.count == 1
            if !waitsInReceive {
                // Timeout or EINTR: look at the stop signal and the socket table again.
                guard poll(&watched, nfds_t(watched.count), pollTimeout) > 0 else { continue }
            }
            for (index, socket) in sockets.enumerated() where waitsInReceive || watched[index].revents != 0 {
                let count = zl_recvmmsg(
                    socket.fd, receiveHeaders, UInt32(batch), waitsInReceive ? Int32(MSG_WAITFORONE) : Int32(MSG_DONTWAIT))
                defer { resetReceiveHeaders(max(1, Int(count))) }
                guard count > 0 else { continue }
                // The catalog and health in force when the datagrams arrived, not when the wait began.
                publisher.refresh(&responder, seen: &generation)
                prepared?.follow(responder)
                if responder.engine.catalog.dns.rateLimit != limiter.settings {
                    limiter = ResponseRateLimiter(settings: responder.engine.catalog.dns.rateLimit)
                }
                let now = ContinuousClock.now - origin
                var answers = 0
                for i in 0..<Int(count) where receiveHeaders[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) == 0 {
                    let message = UnsafeRawBufferPointer(start: received.baseAddress! + i * slotSize, count: Int(receiveHeaders[i].msg_len))
                    let source = peers[i].sin_family == sa_family_t(AF_INET)
                        ? IPv4Endpoint(peers[i]).address : nil
                    output.clear()
                    let outcome = prepared?.respond(
                        to: message, listener: socket.context, source: source, transport: .udp, responder: responder, into: &output)
                        ?? responder.respond(to: message, listener: socket.context, source: source, transport: .udp, into: &output)
                    switch outcome {
                    case .answered:
                        guard output.readableBytes <= slotSize else { continue }
                        if socket.rateLimited, let source {
                            let decision = output.withUnsafeReadableBytes { limiter.decide($0, to: source, at: now) }
                            counts.count(decision)
                            if decision == .drop { continue }
                            if decision == .slip { ResponseRateLimiter.truncate(&output) }
                        }
                        counts.count(output, at: output.readerIndex, view: socket.context.vpc)
                    case .dropped, .stream:
                        // A UDP answer is never a stream (the responder writes one message).
                        continue
                    case .forward(let query, let forwarder):
                        let peer = peers[i]
                        let fd = socket.fd
                        forwarder.resolve(query, message: Array(message), limit: query.udpPayloadLimit, client: source) { reply in
                            sendReply(reply, to: peer, on: fd)
                        }
                        continue
                    }
                    let slot = replies.baseAddress! + answers * slotSize
                    let length = output.withUnsafeReadableBytes { bytes in
                        slot.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                        return bytes.count
                    }
                    sendVectors[answers] = iovec(iov_base: slot, iov_len: length)
                    sendHeaders[answers] = zl_mmsghdr(
                        msg_hdr: msghdr(
                            msg_name: UnsafeMutableRawPointer(peers + i), msg_namelen: addressLength,
                            msg_iov: sendVectors + answers, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0),
                        msg_len: 0)
                    answers += 1
                }
                send(sendHeaders, count: answers, on: socket.fd)
            }
        }
    }

    /// Sends one answer that arrived later (from the forwarder), from whatever thread it is on.
    private static func sendReply(_ reply: ByteBuffer, to peer: sockaddr_in, on fd: Int32) {
        var peer = peer
        reply.withUnsafeReadableBytes { bytes in
            _ = withUnsafePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// Sends every prepared answer; under a full send buffer waits briefly, then drops the rest
    /// (UDP clients retry); an answer the kernel refuses (say, to an unreachable peer) is skipped.
    private static func send(_ headers: UnsafeMutablePointer<zl_mmsghdr>, count: Int, on fd: Int32) {
        var sent = 0
        while sent < count {
            let result = zl_sendmmsg(fd, headers + sent, UInt32(count - sent), Int32(MSG_DONTWAIT))
            if result > 0 {
                sent += Int(result)
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&waiting, 1, 50) <= 0 { return }
            } else {
                sent += 1
            }
        }
    }

    /// A UDP socket bound to `address`, sharing the port with the other workers' sockets
    /// (SO_REUSEPORT: the kernel spreads clients over them). Blocking, with `pollTimeout` as
    /// its receive timeout, so that a worker can wait in `recvmmsg` and still look at its stop
    /// signal and socket table that often; every other call on it says `MSG_DONTWAIT`.
    static func openSocket(_ address: IPv4Endpoint) throws(DNSServerError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket(address, errno: errno) }
        var one: Int32 = 1
        var receiveBuffer: Int32 = 4 << 20  // rides out bursts; the kernel caps it at rmem_max
        var receiveTimeout = timeval(tv_sec: 0, tv_usec: Int(pollTimeout) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receiveTimeout, socklen_t(MemoryLayout<timeval>.size))
        var socketAddress = address.sockaddr
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let error = errno
            close(fd)
            throw .socket(address, errno: error)
        }
        return fd
    }
}
