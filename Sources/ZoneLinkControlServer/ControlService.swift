import Foundation
import Logging
import ZoneLinkControl
import ZoneLinkCore

/// The running control plane: holds the current `ControlPlane` and runs changes one at a time.
///
/// A change is decided on the current plane, its catalog handed to `publish` (DNS and the
/// gateway apply it), its rows committed to the store, and the new plane swapped in; only
/// then does the caller get the result. So a success always means "applied and committed".
/// When the plane refuses the change, or the data plane does (`publish` throws), nothing is
/// committed; when the store cannot commit, the previous catalog is published again. Either
/// way the plane, the store and what DNS and the gateway serve stay as they were.
///
/// Changes are queued in arrival order and never overlap, not even across the suspensions of
/// publishing and committing (an actor alone would interleave them there), so catalogs are
/// applied in the order their changes were committed. Reads use the plane of the moment.
/// `publish` runs inside that turn: it may read (`catalog`, `current`) but must not start a
/// change or a reload, which would wait for itself.
///
/// Zonal shifts end by themselves: the service sleeps until the earliest expiry and then runs
/// that ending as a change of its own, through the same path (a shift that expired while the
/// process was down ends at start).
public actor ControlService {
    /// Applies a catalog to DNS and the gateway, or throws why it could not (a `ConfigError`
    /// for a problem with the catalog itself, such as a zone file; any other error for the
    /// host, such as an address in use), having changed nothing.
    public typealias Publish = @Sendable (Catalog) async throws -> Void

    private var plane: ControlPlane
    private let store: any ControlStore
    /// The store's revision `plane.state` was read or committed at.
    private var revision: Int64
    private let suffix: @Sendable () -> String
    private var publish: Publish
    private var onApplied: (@Sendable (StoredState) -> Void)?
    private let turns = Turns()
    /// Sleeps until the next zonal shift expires; replaced after every change.
    private var expiry: Task<Void, Never>?
    private let logger: Logger
    /// Wall-clock seconds since the Unix epoch: zonal shifts' starts and expiries.
    public nonisolated let clock: @Sendable () -> Int64

    /// The system's wall clock, in whole seconds.
    public static let systemClock: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    /// Where committed changes are told (connection events) and anyone may publish.
    public nonisolated let events = EventBus()

    /// Loads the committed state, merges it with the config file's `base`, and removes orphans
    /// (whitelist entries and connection states of objects gone from the file), committing
    /// that removal, and ends the zonal shifts that expired meanwhile. Does not publish: serve
    /// starts DNS and the gateway with `catalog`.
    /// - Parameter snapshot: start from this state instead of loading one (a host whose
    ///   shared store is down at start, from `LastAppliedFile`); orphans and expired shifts are
    ///   then left in the store (the merge ignores orphans; expiry ends the shifts once the
    ///   store is back) and nothing is committed.
    /// - Throws: `ConfigError` when the file and the stored objects do not fit together (an
    ///   API endpoint in a VPC the file no longer has, say), with the stored objects named by
    ///   ID; the store's errors.
    public init(
        base: Configuration, file: String, store: any ControlStore, startingFrom snapshot: StoredState? = nil, serial: UInt32 = 1,
        suffix: @escaping @Sendable () -> String = ControlService.randomSuffix,
        clock: @escaping @Sendable () -> Int64 = ControlService.systemClock,
        logger: Logger = Logger(label: "zonelink.control"),
        publish: @escaping Publish = { _ in }
    ) async throws {
        let loaded: StoredState
        if let snapshot { loaded = snapshot } else { loaded = try await store.loadState() }
        // Validated once, and again only when the orphans or expired shifts change the state:
        // validation is the costly part of a start (seconds at 100,000 endpoints).
        let first = try ControlPlane(base: base, file: file, state: loaded.state, serial: serial, suffix: suffix)
        var changes = first.orphans(under: base)
        let expired = snapshot == nil ? first.expiredShifts(at: clock()) : []
        changes += expired.map { StateChange.endZonalShift(zone: $0.zone) }
        if snapshot == nil {
            self.revision = try await store.commit(changes, over: loaded.revision)
            for shift in expired {
                logger.notice("zonal shift ended: it expired while ZoneLink was stopped", metadata: ["zone": "\(shift.zone)"])
            }
        } else {
            self.revision = loaded.revision
        }
        self.plane = changes.isEmpty
            ? first
            : try ControlPlane(base: base, file: file, state: loaded.state.applying(changes), serial: serial, suffix: suffix)
        self.store = store
        self.suffix = suffix
        self.publish = publish
        self.clock = clock
        self.logger = logger
    }

    deinit {
        expiry?.cancel()
    }

    /// Sets where catalogs go from the next change on (serve sets it once DNS and the gateway,
    /// started with `catalog`, exist).
    public func setPublish(_ publish: @escaping Publish) {
        self.publish = publish
        scheduleExpiry()
    }

    /// Called with the state and revision after every change applied from now on (a shared
    /// store's host keeps it in `LastAppliedFile`), inside the turn: keep it short.
    public func setOnApplied(_ onApplied: @escaping @Sendable (StoredState) -> Void) {
        self.onApplied = onApplied
        onApplied(StoredState(state: plane.state, revision: revision))
    }

    /// Twelve random lower-case letters and digits.
    public static let randomSuffix: @Sendable () -> String = {
        var generator = SystemRandomNumberGenerator()
        return ControlPlane.randomSuffix(using: &generator)
    }

    /// The plane now: reads (lists, shows) are answered from it.
    public var current: ControlPlane { plane }

    /// The catalog now, as last published.
    public var catalog: Catalog { plane.catalog }

    /// The store's revision the plane now is at.
    public var storeRevision: Int64 { revision }

    /// Brings the plane up to what the store holds when another host committed (a
    /// notification names `revision`) or after the store was out of reach (`nil`: load
    /// whatever it holds). The loaded state goes the same one way as a local change:
    /// plane → catalog → `publish` → swapped in.
    /// - Returns: the revision now served, or nil when the plane was already there.
    /// - Throws: the store's errors; `ConfigError` when the stored state does not fit this
    ///   host's config file; what `publish` throws. The plane keeps serving the old state then.
    @discardableResult
    public func catchUp(to notified: Int64? = nil) async throws -> Int64? {
        await turns.acquire()
        defer { turns.release() }
        if let notified, notified <= revision { return nil }
        return try await adoptStored()
    }

    /// Loads the store's state and, when it is newer, applies and swaps it in.
    private func adoptStored() async throws -> Int64? {
        let loaded = try await store.loadState()
        guard loaded.revision != revision else { return nil }
        let next = try ControlPlane(
            base: plane.base, file: plane.file, state: loaded.state, serial: plane.catalog.serial &+ 1, suffix: suffix)
        try await publish(next.catalog)
        let previous = plane.catalog
        plane = next
        revision = loaded.revision
        onApplied?(loaded)
        events.publish(
            EventDraft.connectionChanges(from: previous, to: next.catalog) + EventDraft.zonalShiftChanges(from: previous, to: next.catalog))
        scheduleExpiry()
        return loaded.revision
    }

    /// Runs one change: decides it on the current plane, applies its catalog, commits its
    /// rows, swaps in the new plane, then returns its value.
    /// - Throws: the operation's `ControlError`; `.invalid` or `.notApplied` when DNS or the
    ///   gateway refused the catalog; the store's error. Nothing changed then.
    public func perform<Value: Sendable>(_ operation: @Sendable (ControlPlane) throws -> Applied<Value>) async throws -> Value {
        await turns.acquire()
        defer { turns.release() }
        let applied = try operation(plane)
        try await applyThenCommit(applied)
        return applied.value
    }

    /// Applies a reloaded config file (SIGHUP): the API's objects stay, orphans are removed
    /// (`ControlPlane.reloading(base:file:)`), the merged catalog is applied and returned.
    /// - Throws: `ConfigError` when the new file and the API's objects do not fit together,
    ///   or DNS or the gateway refused the result; the old plane keeps running then.
    @discardableResult
    public func reload(base: Configuration, file: String) async throws -> Catalog {
        await turns.acquire()
        defer { turns.release() }
        let applied = try plane.reloading(base: base, file: file)
        try await applyThenCommit(applied)
        return applied.catalog
    }

    /// The one way a change takes effect: data plane first (it may refuse), then the store,
    /// then the plane. A commit that fails puts the previous catalog back in service.
    private func applyThenCommit<Value>(_ applied: Applied<Value>) async throws {
        do {
            try await publish(applied.catalog)
        } catch let error as ConfigError {
            throw ControlError.invalid(issues: applied.plane.userPaths(error.issues))
        } catch {
            throw ControlError.notApplied("not applied, nothing changed: \(error)")
        }
        do {
            revision = try await commit(applied.changes)
        } catch let conflict as StoreConflict {
            try? await publish(plane.catalog)
            // Another host won: serve what it committed, then tell the client to decide again.
            let caughtUp = (try? await adoptStored()).flatMap { $0 }
            throw ControlError.conflict(
                "\(conflict); nothing of this request was committed"
                    + (caughtUp != nil ? " and this host now serves revision \(revision): send it again if it still applies" : ": send it again"))
        } catch let unavailable as StoreUnavailable {
            try? await publish(plane.catalog)
            throw ControlError.storeUnavailable("\(unavailable)")
        } catch {
            try? await publish(plane.catalog)
            throw error
        }
        let previous = plane.catalog
        plane = applied.plane
        events.publish(
            EventDraft.connectionChanges(from: previous, to: applied.catalog)
                + EventDraft.zonalShiftChanges(from: previous, to: applied.catalog))
        if !applied.changes.isEmpty { onApplied?(StoredState(state: plane.state, revision: revision)) }
        if applied.changes.contains(where: \.isZonalShift) { scheduleExpiry() }
    }

    /// Sleeps until the earliest expiry of a zonal shift, then ends what expired (and sleeps
    /// again). Nothing sleeps while no shift has an expiry.
    private func scheduleExpiry() {
        expiry?.cancel()
        expiry = nil
        guard let next = plane.state.zonalShifts.compactMap(\.expiresAt).min() else { return }
        let wait = Duration.seconds(max(0, next - clock()))
        expiry = Task { [weak self] in
            do { try await Task.sleep(for: wait) } catch { return }
            await self?.endExpiredShifts()
        }
    }

    private func endExpiredShifts() async {
        let now = clock()
        do {
            let ended = try await perform { try $0.endingExpiredShifts(now: now) }
            // Woken a moment early (the clock counts whole seconds): sleep again.
            if ended.isEmpty { scheduleExpiry() }
            for shift in ended {
                logger.notice("zonal shift ended: it expired", metadata: ["zone": "\(shift.zone)", "reason": "\(shift.reason)"])
            }
        } catch ControlError.conflict {
            // Another host sharing the store ended it (or changed something) first; this host
            // now serves what it committed, and sleeps until the next expiry there is.
            scheduleExpiry()
        } catch {
            logger.error("cannot end expired zonal shifts: \(error); trying again in 10 s")
            try? await Task.sleep(for: .seconds(10))
            if !Task.isCancelled { scheduleExpiry() }
        }
    }

    /// Commits in a task of its own: a cancelled request cannot cut a commit short after it
    /// started, so what the store holds and what the plane says never part.
    private func commit(_ changes: [StateChange]) async throws -> Int64 {
        guard !changes.isEmpty else { return revision }
        let store = store
        let revision = revision
        return try await Task { try await store.commit(changes, over: revision) }.value
    }
}
