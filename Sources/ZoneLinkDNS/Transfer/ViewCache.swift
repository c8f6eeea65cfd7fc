import Synchronization
import ZoneLinkCore

/// The zones of views last built for transfers, kept while the engine and the health they were
/// built from are current: a secondary's SOA poll or a second transfer of an unchanged view then
/// costs a lookup instead of building the view and its digest again (about 60,000 records for
/// 10,000 endpoints).
///
/// Holds the engine it was filled from (compared by identity, held so that the identity is not
/// reused), and drops everything when another engine or another health is asked about.
public final class ViewCache: Sendable {
    struct Key: Hashable {
        var view: ViewKey
        var apex: DNSName
    }

    struct Built {
        var zone: TransferZone
        var digest: [UInt8]
        /// The zone's AXFR as unsigned messages for the serial they carry, once a transfer
        /// wrote them (`TransferMessages.reused` fits them to each request).
        var written: (serial: UInt32, messages: [[UInt8]])?
    }

    private struct State {
        var engine: AnswerEngine?
        var health = ZoneHealth.allHealthy
        var zones: [Key: Built] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The zone `apex` of `view` (the catalog zone included) as `engine` and `health` make it,
    /// with its content digest; nil when the view does not hold it.
    func zone(_ apex: DNSName, of view: ViewKey, engine: AnswerEngine, health: ZoneHealth) -> (zone: TransferZone, digest: [UInt8])? {
        let key = Key(view: view, apex: apex)
        if let hit = state.withLock({ state -> Built? in
            guard state.engine === engine, state.health == health else { return nil }
            return state.zones[key]
        }) {
            return (hit.zone, hit.digest)
        }
        let built = apex == ViewContent.catalogApex
            ? ViewContent.catalogZone(of: view, engine: engine)
            : ViewContent.zone(apex, of: view, engine: engine, health: health)
        guard let built else { return nil }
        let digest = built.contentDigest
        state.withLock { state in
            if state.engine !== engine || state.health != health {
                state = State(engine: engine, health: health)
            }
            state.zones[key] = Built(zone: built, digest: digest)
        }
        return (built, digest)
    }

    /// The AXFR messages of zone `apex` of `view` with `serial`, as `write` makes them the
    /// first time; later transfers of the same content copy them instead of writing 60,000
    /// records again. Kept only while the zone itself is (same engine, same health).
    func messages(
        _ apex: DNSName, of view: ViewKey, engine: AnswerEngine, health: ZoneHealth, serial: UInt32, write: () -> [[UInt8]]
    ) -> [[UInt8]] {
        let key = Key(view: view, apex: apex)
        let current = { (state: State) -> Bool in state.engine === engine && state.health == health }
        if let hit = state.withLock({ state -> [[UInt8]]? in
            guard current(state), let written = state.zones[key]?.written, written.serial == serial else { return nil }
            return written.messages
        }) {
            return hit
        }
        let messages = write()
        state.withLock { state in
            if current(state), state.zones[key] != nil { state.zones[key]!.written = (serial, messages) }
        }
        return messages
    }
}
