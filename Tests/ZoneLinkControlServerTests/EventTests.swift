import Foundation
import Testing
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkCore
@testable import ZoneLinkControlServer

@Suite("Events: who hears what, in order, with bounded buffers")
struct EventTests {
    func draft(_ message: String, accounts: [String]) -> EventDraft {
        EventDraft(.health, subject: "s", message: message, accounts: accounts)
    }

    @Test func theJournalNumbersKeepsTheRecentAndFiltersByAccount() {
        var journal = EventJournal(capacity: 3)
        for (i, accounts) in [[accountA], [accountB], [], [accountA, accountB], [accountA]].enumerated() {
            _ = journal.append(draft("e\(i + 1)", accounts: accounts), time: "t")
        }
        #expect(journal.lastSequence == 5)
        #expect(journal.events(after: 0, visibleTo: .operator).map(\.message) == ["e3", "e4", "e5"])
        #expect(journal.events(after: 0, visibleTo: .account(accountA)).map(\.message) == ["e4", "e5"])
        #expect(journal.events(after: 4, visibleTo: .account(accountA)).map(\.message) == ["e5"])
        #expect(journal.events(after: 0, visibleTo: .account(accountC)).isEmpty)
    }

    @Test func aSubscriberHearsOnlyItsOwnInOrder() async throws {
        let bus = EventBus()
        let consumer = try #require(bus.subscribe(after: 0, principal: .account(accountA)))
        let other = try #require(bus.subscribe(after: 0, principal: .account(accountC)))
        bus.publish(draft("mine 1", accounts: [accountA, accountB]))
        bus.publish(draft("not mine", accounts: [accountB]))
        bus.publish(draft("operator only", accounts: []))
        bus.publish(draft("mine 2", accounts: [accountA]))
        var heard: [String] = []
        for await event in consumer {
            heard.append(event.message)
            if heard.count == 2 { break }
        }
        #expect(heard == ["mine 1", "mine 2"])
        // The other account heard nothing: its stream holds only what was published for it.
        bus.publish(draft("for C", accounts: [accountC]))
        for await event in other {
            #expect(event.message == "for C")
            break
        }
    }

    @Test func aSubscriberThatNeverReadsIsDroppedNotGrown() async throws {
        let bus = EventBus()
        let idle = try #require(bus.subscribe(after: 0, principal: .operator))
        for i in 0..<(EventBus.subscriberBuffer + 10) { bus.publish(draft("e\(i)", accounts: [])) }
        #expect(bus.subscriberCounts.listening == 0 && bus.subscriberCounts.dropped == 1)
        // What it had buffered is still there, then its stream ends.
        var count = 0
        for await _ in idle { count += 1 }
        #expect(count == EventBus.subscriberBuffer)
    }

    @Test func connectionChangesAreTheConsumersAndTheProvidersOnly() async throws {
        try await withServer { server in
            try await AuthorizationMatrixTests.buildWorld(server.service, connected: true)
            let events = server.service.events
            func messages(_ who: Principal) -> [String] {
                events.recent(visibleTo: who).filter { $0.kind == .connection }.map(\.message)
            }
            #expect(messages(.account(accountA)) == ["ep-a to epsrv-x created: Disconnected", "ep-a to epsrv-x: Disconnected → Connected"])
            #expect(messages(.account(accountB)) == messages(.account(accountA)))
            #expect(messages(.account(accountC)).isEmpty)
            #expect(messages(.operator) == messages(.account(accountA)))
            // And over HTTP, as JSON (no text/event-stream asked for).
            let reply = try await server.request("GET", "/v1/events", as: .account(accountC))
            #expect(reply.status == 200 && !reply.text.contains("ep-a"), "\(reply)")
            let mine = try await server.request("GET", "/v1/events?after=1", as: .account(accountA)).decode([Components.Schemas.Event].self)
            #expect(mine.map(\.sequence).allSatisfy { $0 > 1 } && mine.contains { $0.message.contains("Connected") })
        }
    }

    @Test func refusalsAreTheCallersEvents() async throws {
        try await withServer { server in
            try await AuthorizationMatrixTests.buildWorld(server.service, connected: false)
            let reply = try await server.request("POST", "/v1/services/epsrv-x/connections/ep-a/accept", as: .account(accountA))
            #expect(reply.status == 403)
            let refusals = server.service.events.recent(visibleTo: .account(accountA)).filter { $0.kind == .refusal }
            #expect(refusals.count == 1 && refusals[0].message.contains("refused"))
            #expect(server.service.events.recent(visibleTo: .account(accountB)).filter { $0.kind == .refusal }.isEmpty)
        }
    }

    @Test func zoneHealthTransitionsNameBothSides() async throws {
        try await withServer { server in
            try await AuthorizationMatrixTests.buildWorld(server.service, connected: true)
            let catalog = await server.service.catalog
            let eni = ENIID(endpoint: "ep-a", zone: "eu-central-1b")
            let drafts = EventDraft.zoneHealthChanges(unhealthyBefore: [], unhealthyNow: [eni], catalog: catalog)
            #expect(drafts.count == 1 && drafts[0].message.contains("unhealthy") && drafts[0].subject == eni.description)
            #expect(drafts.first?.accounts == [accountA, accountB])
            #expect(EventDraft.zoneHealthChanges(unhealthyBefore: [eni], unhealthyNow: [eni], catalog: catalog).isEmpty)
        }
    }

    @Test func refusedFlowsAreTheEndpointsTwoAccountsAndNameNoAddress() async throws {
        try await withServer { server in
            try await AuthorizationMatrixTests.buildWorld(server.service, connected: true)
            let catalog = await server.service.catalog
            let draft = EventDraft.flowsRefused(
                endpoint: "ep-a", proto: "tcp", port: 80, summary: "no ingress rule of sg-web allows tcp/80 from the client", count: 7,
                catalog: catalog)
            #expect(draft.kind == .refusal && draft.subject == "ep-a")
            #expect(draft.message == "7 tcp flows to ep-a port 80 refused: no ingress rule of sg-web allows tcp/80 from the client")
            #expect(draft.accounts == [accountA, accountB])
            // An endpoint the catalog no longer has: the operator's alone.
            #expect(EventDraft.flowsRefused(endpoint: "ep-gone", proto: "udp", port: 53, summary: "x", count: 1, catalog: catalog).accounts == [])
        }
    }

    @Test func theStatusPageNeedsNoTokenAndHoldsNoData() async throws {
        try await withServer { server in
            try await AuthorizationMatrixTests.buildWorld(server.service, connected: true)
            let page = try await server.request("GET", "/ui", as: nil)
            #expect(page.status == 200 && page.text.contains("sessionStorage") && page.text.contains("Authorization"), "\(page.status)")
            #expect(!page.text.contains("ep-a") && !page.text.contains("epsrv-x"), "the page itself carries no data")
            #expect(try await server.request("GET", "/v1/events", as: nil).status == 401)
            #expect(try await server.request("POST", "/ui", as: nil).status == 405)
        }
    }
}
