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
    private let store: StateStore
    private var publish: Publish
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
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
    /// - Throws: `ConfigError` when the file and the stored objects do not fit together (an
    ///   API endpoint in a VPC the file no longer has, say), with the stored objects named by
    ///   ID; the store's errors.
    public init(
        base: Configuration, file: String, store: StateStore, serial: UInt32 = 1,
        suffix: @escaping @Sendable () -> String = ControlService.randomSuffix,
        clock: @escaping @Sendable () -> Int64 = ControlService.systemClock,
        logger: Logger = Logger(label: "zonelink.control"),
        publish: @escaping Publish = { _ in }
    ) async throws {
        let loaded = try store.load()
        let first = try ControlPlane(base: base, file: file, state: loaded, serial: serial, suffix: suffix)
        let pruned = try first.reloading(base: base, file: file)
        let expired = try pruned.plane.endingExpiredShifts(now: clock())
        try await store.commit(pruned.changes + expired.changes)
        for shift in expired.value {
            logger.notice("zonal shift ended: it expired while ZoneLink was stopped", metadata: ["zone": "\(shift.zone)"])
        }
        self.plane = try ControlPlane(base: base, file: file, state: expired.state, serial: serial, suffix: suffix)
        self.store = store
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

    /// Twelve random lower-case letters and digits.
    public static let randomSuffix: @Sendable () -> String = {
        var generator = SystemRandomNumberGenerator()
        return ControlPlane.randomSuffix(using: &generator)
    }

    /// The plane now: reads (lists, shows) are answered from it.
    public var current: ControlPlane { plane }

    /// The catalog now, as last published.
    public var catalog: Catalog { plane.catalog }

    /// Runs one change: decides it on the current plane, applies its catalog, commits its
    /// rows, swaps in the new plane, then returns its value.
    /// - Throws: the operation's `ControlError`; `.invalid` or `.notApplied` when DNS or the
    ///   gateway refused the catalog; the store's error. Nothing changed then.
    public func perform<Value: Sendable>(_ operation: @Sendable (ControlPlane) throws -> Applied<Value>) async throws -> Value {
        await acquire()
        defer { release() }
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
        await acquire()
        defer { release() }
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
            try await commit(applied.changes)
        } catch {
            try? await publish(plane.catalog)
            throw error
        }
        let previous = plane.catalog
        plane = applied.plane
        events.publish(
            EventDraft.connectionChanges(from: previous, to: applied.catalog)
                + EventDraft.zonalShiftChanges(from: previous, to: applied.catalog))
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
        } catch {
            logger.error("cannot end expired zonal shifts: \(error); trying again in 10 s")
            try? await Task.sleep(for: .seconds(10))
            if !Task.isCancelled { scheduleExpiry() }
        }
    }

    /// Commits in a task of its own: a cancelled request cannot cut a commit short after it
    /// started, so what the store holds and what the plane says never part.
    private func commit(_ changes: [StateChange]) async throws {
        guard !changes.isEmpty else { return }
        let store = store
        try await Task { try await store.commit(changes) }.value
    }

    private func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Hands the turn to the next waiting change (still busy), or frees it.
    private func release() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
