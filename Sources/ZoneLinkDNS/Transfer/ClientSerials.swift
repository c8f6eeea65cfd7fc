import Dispatch
import Synchronization
import ZoneLinkCore

/// The SOA serial ordinary clients are answered with (a plain `dig SOA`, the SOA of a negative
/// answer): their view's serial from `ViewSerials`, the one its secondaries transfer, persisted
/// and never going back, rather than the catalog's counter, which starts again at 1 with the
/// process. Without it a resolver that compares serials would see ZoneLink go back in time at
/// every restart, and a client would see one serial from the listener and another from the
/// secondary that carries the same view.
///
/// A serial needs the view's content digest, which costs building the view (about 60,000
/// records for 10,000 endpoints, a second of CPU at 100,000). So views are never built on the
/// answering thread: after a change (another engine or health), clients get the last serial
/// known until a queue of this class's own has built the view again and moved the serial on.
/// For that moment a client may see new content with the old serial; it never sees a serial
/// go back. A view of which no serial is known at all (the first question ever, not even one
/// from before a restart) gets one reserved for it (`ViewSerials.reserve`) and is built on the
/// queue likewise: its first build moves the serial one step past the reserved one.
///
/// Views are those of `ViewKey`; the clients of a listener with no VPC are `ViewKey.outside`.
public final class ClientSerials: Sendable {
    private let serials: ViewSerials
    private let queue = DispatchQueue(label: "zonelink-client-serials")

    private struct State {
        /// The engine and health the views in `current` were built from. The engine is held
        /// weakly: one a reload replaced is freed (with its whole catalog) once no responder
        /// uses it, not kept until the next SOA question; and a freed engine's reference reads
        /// nil, so a new engine at the same address is never taken for it.
        weak var engine: AnswerEngine?
        var health = ZoneHealth.allHealthy
        /// The latest responder asked through (`Responder.sequence`).
        var responder = Int.min
        /// Zones of views whose serial was worked out from `engine` and `health`.
        var current: Set<ViewSerials.Key> = []
        /// Zones of views asked about since, to build on the queue.
        var stale: Set<ViewSerials.Key> = []
        /// True while a work item is queued or running.
        var scheduled = false
    }

    private let state = Mutex(State())

    public init(serials: ViewSerials) {
        self.serials = serials
    }

    /// `answer` with the serial of every SOA of a generated or private-domain zone set to
    /// that zone's serial in `view`. Static zones keep their files' serials.
    /// `responder`: the `Responder.sequence` of the responder that answered.
    public func stamp(_ answer: inout Answer, view: ViewKey, engine: AnswerEngine, health: ZoneHealth, responder: Int) {
        for i in answer.answer.indices where answer.answer[i].rrset.type == .soa {
            stamp(&answer.answer[i], view: view, engine: engine, health: health, responder: responder)
        }
        for i in answer.authority.indices where answer.authority[i].rrset.type == .soa {
            stamp(&answer.authority[i], view: view, engine: engine, health: health, responder: responder)
        }
    }

    private func stamp(_ set: inout RecordSet, view: ViewKey, engine: AnswerEngine, health: ZoneHealth, responder: Int) {
        guard !engine.staticApexes.contains(set.owner),
              let serial = serial(of: set.owner, in: view, engine: engine, health: health, responder: responder)
        else { return }
        set.records = set.records.map { rdata in
            guard rdata.count >= 22 else { return rdata }
            var stamped = rdata
            let at = rdata.count - 20
            stamped[at] = UInt8(serial >> 24)
            stamped[at + 1] = UInt8(serial >> 16 & 0xFF)
            stamped[at + 2] = UInt8(serial >> 8 & 0xFF)
            stamped[at + 3] = UInt8(serial & 0xFF)
            return stamped
        }
    }

    /// The serial of zone `apex` in `view` as clients are answered now; nil when the view does
    /// not hold that zone.
    public func serial(of apex: DNSName, in view: ViewKey, engine: AnswerEngine, health: ZoneHealth, responder: Int) -> UInt32? {
        let key = ViewSerials.Key(view: view, apex: apex)
        let known = serials.current(key)
        let refresh = state.withLock { state -> Bool in
            // A question of an earlier responder, in flight while a later one was published:
            // its content is gone, so it is not worked out (that would move the serial for old
            // content, and again for the new). It gets the last serial known.
            guard responder >= state.responder else { return false }
            state.responder = responder
            if state.engine !== engine || state.health != health {
                state = State(engine: engine, health: health, responder: responder, scheduled: state.scheduled)
            }
            guard !state.current.contains(key) else { return false }
            state.stale.insert(key)
            defer { state.scheduled = true }
            return !state.scheduled
        }
        // Reserved before the build is queued, so that the build finds the reservation.
        let serial = known ?? (ViewContent.transferable(key.apex, in: key.view, engine: engine) != nil ? serials.reserve(key) : nil)
        if refresh { queue.async { self.buildStale() } }
        return serial
    }

    /// Works out the serials of the views asked about since the last change, the latest
    /// engine and health first, until none is left.
    private func buildStale() {
        while true {
            let job = state.withLock { state -> (AnswerEngine, ZoneHealth, [ViewSerials.Key])? in
                // A view asked about again while its build ran is current now: not built twice
                // (under steady SOA questions that made a build follow every build, forever).
                state.stale.subtract(state.current)
                guard let engine = state.engine, !state.stale.isEmpty else {
                    state.scheduled = false
                    return nil
                }
                defer { state.stale = [] }
                return (engine, state.health, Array(state.stale))
            }
            guard let (engine, health, keys) = job else { return }
            for key in keys { _ = build(key, engine: engine, health: health) }
        }
    }

    /// Builds the zone, moves its serial on if its content changed, and marks it current.
    private func build(_ key: ViewSerials.Key, engine: AnswerEngine, health: ZoneHealth) -> UInt32? {
        let serial = ViewContent.zone(key.apex, of: key.view, engine: engine, health: health).map {
            serials.update(key, digest: $0.contentDigest).serial
        }
        state.withLock { state in
            if state.engine === engine && state.health == health { state.current.insert(key) }
        }
        return serial
    }

    /// Grows whenever a serial clients are answered with may have moved (`ViewSerials.changes`).
    public var changes: Int { serials.changes }

    /// Waits until the views asked about so far are built (for tests).
    public func settle() {
        queue.sync {}
    }
}
