import Foundation
import Synchronization
import ZoneLinkControl
import ZoneLinkCore

/// Where events are published and where `GET /v1/events` and the status page hear them.
///
/// Publishing is one call from anywhere, never blocks and never fails:
///
///     bus.publish(EventDraft(.zonalShift, subject: "eu-central-1a", message: "zonal shift started: …", accounts: [provider]))
///
/// The journal (`EventJournal`) numbers events and keeps the recent ones. Each subscriber
/// has a queue of at most `subscriberBuffer` events; one that falls that far behind (a client
/// that never reads) is dropped, its stream finished, so a slow reader never grows memory.
public final class EventBus: Sendable {
    /// Events one subscriber may have waiting before it is dropped.
    public static let subscriberBuffer = 256
    /// Subscribers at once; one more is refused (each holds a control connection too).
    public static let maxSubscribers = 64

    private struct Subscriber {
        var principal: Principal
        var continuation: AsyncStream<ControlEvent>.Continuation
    }

    private struct State {
        var journal: EventJournal
        var subscribers: [Int: Subscriber] = [:]
        var nextID = 0
        var droppedSubscribers = 0
    }

    private let state: Mutex<State>

    public init(capacity: Int = EventJournal.defaultCapacity) {
        state = Mutex(State(journal: EventJournal(capacity: capacity)))
    }

    /// Numbers, stamps and keeps the event, and hands it to every subscriber allowed to see it.
    @discardableResult
    public func publish(_ draft: EventDraft) -> ControlEvent {
        let time = RFC3339.format(nanoseconds: Self.wallClock())
        let (event, behind) = state.withLock { state in
            let event = state.journal.append(draft, time: time)
            var behind: [AsyncStream<ControlEvent>.Continuation] = []
            for (id, subscriber) in state.subscribers where event.isVisible(to: subscriber.principal) {
                if case .dropped = subscriber.continuation.yield(event) {
                    state.subscribers[id] = nil
                    state.droppedSubscribers += 1
                    behind.append(subscriber.continuation)
                }
            }
            return (event, behind)
        }
        // Outside the lock: finishing runs the stream's termination handler, which takes it.
        for continuation in behind { continuation.finish() }
        return event
    }

    public func publish(_ drafts: [EventDraft]) {
        for draft in drafts { publish(draft) }
    }

    /// The kept events after `sequence` that `principal` may see (at most `limit`, the newest).
    public func recent(after sequence: UInt64 = 0, visibleTo principal: Principal, limit: Int = .max) -> [ControlEvent] {
        state.withLock { $0.journal.events(after: sequence, visibleTo: principal, limit: limit) }
    }

    /// The events after `sequence` that `principal` may see: first the kept ones, then each as
    /// it is published, until the subscriber is dropped or stops reading. Nil when
    /// `maxSubscribers` already listen.
    public func subscribe(after sequence: UInt64, principal: Principal) -> AsyncStream<ControlEvent>? {
        let (stream, continuation) = AsyncStream<ControlEvent>.makeStream(bufferingPolicy: .bufferingOldest(Self.subscriberBuffer))
        let id: Int? = state.withLock { state in
            guard state.subscribers.count < Self.maxSubscribers else { return nil }
            let id = state.nextID
            state.nextID += 1
            // Replayed under the lock, so nothing published meanwhile is missed or doubled.
            for event in state.journal.events(after: sequence, visibleTo: principal, limit: Self.subscriberBuffer / 2) {
                continuation.yield(event)
            }
            state.subscribers[id] = Subscriber(principal: principal, continuation: continuation)
            return id
        }
        guard let id else { return nil }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Subscribers now, and dropped for falling behind since start.
    public var subscriberCounts: (listening: Int, dropped: Int) {
        state.withLock { ($0.subscribers.count, $0.droppedSubscribers) }
    }

    static func wallClock() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
