import Foundation
import Logging
import Testing
import ZoneLinkCore
import ZoneLinkTestSupport
@testable import ZoneLinkGateway

@Suite("RFC 3339 times")
struct RFC3339Tests {
    @Test func formatsUTCWithMicroseconds() {
        #expect(RFC3339.format(nanoseconds: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(RFC3339.format(nanoseconds: 1_764_597_727_123_456_789) == "2025-12-01T14:02:07.123456Z")
        #expect(RFC3339.format(nanoseconds: 951_782_400_000_000_000) == "2000-02-29T00:00:00.000000Z")
    }

    @Test func parsesZonesFractionsAndRefusesNonsense() {
        #expect(RFC3339.parse("2025-12-01T14:02:07Z") == 1_764_597_727_000_000_000)
        #expect(RFC3339.parse("2025-12-01T16:02:07+02:00") == 1_764_597_727_000_000_000)
        #expect(RFC3339.parse("2025-12-01t14:02:07.5z") == 1_764_597_727_500_000_000)
        #expect(RFC3339.parse("2025-12-01 14:02:07.123456789Z") == 1_764_597_727_123_456_789)
        for bad in ["", "2025-12-01", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z", "2025-12-01T14:02:07", "2025-12-01T24:00:00Z",
                    "2025-12-01T14:02:07.Z", "2025-12-01T14:02:07+2:00", "yesterday"] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func roundTripsOverCenturies() {
        var random = SplitMix64(seed: 3339)
        for _ in 0..<2_000 {
            let nanoseconds = Int64.random(in: 0...4_102_444_800_000_000_000, using: &random) / 1_000 * 1_000
            #expect(RFC3339.parse(RFC3339.format(nanoseconds: nanoseconds)) == nanoseconds)
        }
    }
}

@Suite("Attribution: records and who held a NAT port")
struct NATHistoryTests {
    func flow(vpc: String, client: String = "10.10.2.1:40000", port: UInt16) throws -> Flow {
        var table = NATTable(portRange: port...port)
        return try table.open(
            key(vpc: vpc, client: client), target: seedTarget, providerVPC: "vpc-2", natAddresses: seedNAT,
            endpoint: vpc == "vpc-1" ? "ep-consumer1" : "ep-consumer3", loadBalancer: "clb-1", backend: 0,
            account: vpc == "vpc-1" ? "1111111111111111" : "3333333333333333", now: .zero)
    }

    func t(_ seconds: Int64) -> String { RFC3339.format(nanoseconds: 1_764_597_600_000_000_000 + seconds * 1_000_000_000) }
    func at(_ seconds: Int64) -> Int64 { 1_764_597_600_000_000_000 + seconds * 1_000_000_000 }

    @Test func aRecordIsOneJSONLineTheDecoderReads() throws {
        let record = AttributionRecord(.close, try flow(vpc: "vpc-1", port: 40123), opened: t(0), time: t(5), reason: .ended)
        let line = record.jsonLine
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let decoded = try JSONDecoder().decode(AttributionRecord.self, from: Data(line.utf8))
        #expect(decoded == record)
        #expect(decoded.nat == "192.168.24.240:40123" && decoded.account == "1111111111111111" && decoded.bytesFromClient == 0)
        #expect(AttributionRecord.quoted("a\"b\\c\u{1}") == #""a\"b\\c\u0001""#)
    }

    @Test func theWritersBytesAreTheRecordsLine() throws {
        var encoder = AttributionEncoder()
        let flow = try flow(vpc: "vpc-3", port: 40123)
        for (event, reason) in [(AttributionRecord.Event.open, FlowCloseReason?.none), (.close, .natPortInUse)] {
            let time = encoder.time(1_764_597_727_123_456_789)
            var line: [UInt8] = []
            encoder.append(event, flow, opened: Array(t(0).utf8), time: time, reason: reason, to: &line)
            let record = AttributionRecord(event, flow, opened: t(0), time: "2025-12-01T14:02:07.123456Z", reason: reason)
            #expect(String(decoding: line, as: UTF8.self) == record.jsonLine)
        }
    }

    @Test func theSamePortHeldInTurnNamesEachHolder() throws {
        let one = try flow(vpc: "vpc-1", port: 40123), three = try flow(vpc: "vpc-3", port: 40123)
        let records = [
            AttributionRecord(event: .start, time: t(-10)),
            AttributionRecord(.open, one, opened: t(0), time: t(0)),
            AttributionRecord(.close, one, opened: t(0), time: t(10), reason: .ended),
            AttributionRecord(.open, three, opened: t(20), time: t(20)),
            AttributionRecord(.close, three, opened: t(20), time: t(30), reason: .idle),
        ]
        let history = NATHistory(records: records)
        func holder(_ second: Int64, port: UInt16? = 40123) -> [String] {
            history.answer(NATHistory.Question(nat: seedNAT[0], port: port, at: at(second))).compactMap(\.record.vpc)
        }
        #expect(holder(5) == ["vpc-1"])
        #expect(holder(10) == ["vpc-1"])
        #expect(holder(15) == [])
        #expect(holder(25) == ["vpc-3"])
        #expect(holder(25, port: 40124) == [])
        #expect(history.answer(NATHistory.Question(nat: seedNAT[0], since: at(15))).map(\.record.vpc) == ["vpc-3"])
        #expect(history.answer(NATHistory.Question(nat: seedNAT[0], endpoint: "ep-consumer1")).count == 1)
        #expect(history.answer(NATHistory.Question(nat: seedNAT[0], vpc: "vpc-3")).first?.close?.reason == .idle)
    }

    @Test func aRestartEndsWhatAKillLeftOpenAndARotatedOpenIsNotNeeded() throws {
        let one = try flow(vpc: "vpc-1", port: 40123), three = try flow(vpc: "vpc-3", port: 40123)
        let history = NATHistory(records: [
            AttributionRecord(.open, one, opened: t(0), time: t(0)),
            AttributionRecord(event: .start, time: t(50)),
            // Its open went with a rotated file; the close alone says it all.
            AttributionRecord(.close, three, opened: t(60), time: t(70), reason: .ended),
        ])
        let flows = history.answer(NATHistory.Question(nat: seedNAT[0]))
        #expect(flows.count == 2)
        #expect(flows[0].closed == at(50) && flows[0].endedByRestart)
        #expect(flows[1].opened == at(60) && flows[1].closed == at(70))
        #expect(history.answer(NATHistory.Question(nat: seedNAT[0], at: at(55))).isEmpty)
    }
}

@Suite("Attribution log: written off the flow's path, rotated at its cap")
struct AttributionLogTests {
    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("attribution-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func opensAndClosesReachTheFileAndRotationKeepsTheCap() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let settings = AttributionSettings(maxFileSize: 64 << 10, files: 2)
        let log = AttributionLog(directory: dir, settings: settings, logger: Logger(label: "test"))
        log.start()
        var table = NATTable(portRange: 1024...65535, limits: .unlimited)
        for i in 0..<2_000 {
            let flow = try table.open(key(client: "10.10.2.1:\(10_000 + i)"))
            log.record(.open, flow)
            log.record(.close, table.remove(flow.key)!, reason: .ended)
        }
        log.stop()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["attribution.log", "attribution.log.1", "attribution.log.2"], "\(files)")
        for name in files {
            let size = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.size] as? Int ?? 0
            #expect(size <= settings.maxFileSize, "\(name): \(size) bytes")
            let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.posixPermissions] as? Int ?? 0
            #expect(mode == 0o600, "\(name): mode \(String(mode, radix: 8))")
        }
        // The newest records survive, whole lines, paired.
        let text = try String(contentsOfFile: "\(dir)/attribution.log", encoding: .utf8)
        let records = try text.split(separator: "\n").map { try JSONDecoder().decode(AttributionRecord.self, from: Data($0.utf8)) }
        #expect(records.last?.event == .close && records.last?.client == "10.10.2.1:11999")
        let history = NATHistory(records: records)
        #expect(history.flows.allSatisfy { $0.close != nil || $0.record.event == .close })
    }

    @Test func aSlowDiskNeverGrowsTheQueue() throws {
        // Not started: nothing drains, so the queue stops at its limit and counts the rest.
        let log = AttributionLog(directory: try directory(), settings: AttributionSettings(), logger: Logger(label: "test"))
        var table = NATTable(portRange: 1024...65535, limits: .unlimited)
        let flow = try table.open(key())
        for _ in 0..<(AttributionLog.queueLimit + 10) { log.record(.open, flow) }
        let (waiting, dropped) = log.waiting
        #expect(waiting == AttributionLog.queueLimit && dropped == 10)
    }
}

/// What the attribution log costs per flow, in CPU time of the whole process (the writer
/// thread included): flows opened and closed through a `FlowRegistry` with and without the
/// log. A measurement, not a test (tests never check speed): it runs only when asked,
///
///     ZONELINK_MEASURE=1 swift test --skip-build --filter AttributionCost
///
/// and prints the figures; the gateway benchmark's CPU per connection is the denominator.
@Suite("Attribution cost (measurement)")
struct AttributionCost {
    static func processCPU() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    static func run(flows: Int, attribution: AttributionLog?) throws -> Double {
        let registry = FlowRegistry(table: NATTable(portRange: 1024...65535, limits: .unlimited), attribution: attribution)
        let upstream = GatewayPlan.Upstream(
            loadBalancer: "clb-1", listener: 0, providerVPC: "vpc-2", providerNetns: nil, natAddresses: seedNAT, external: nil,
            backends: [], backendZones: [], externalZone: nil, backendPort: 80, scheduler: .wrr, healthCheck: HealthCheck(), proxyProtocol: false)
        let start = processCPU()
        for i in 0..<flows {
            let key = key(client: "10.10.2.1:\(1024 + i % 60_000)")
            _ = try registry.open(key, target: seedTarget, upstream: upstream, endpoint: "ep-consumer1", account: "1111111111111111", backend: 0)
            registry.remove(key, reason: .ended)
        }
        attribution?.stop()
        return (processCPU() - start) / Double(flows)
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["ZONELINK_MEASURE"] != nil,
                   "a measurement, not a test: ZONELINK_MEASURE=1 swift test --skip-build --filter AttributionCost"))
    func perFlow() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attribution-cost-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flows = 200_000
        _ = try Self.run(flows: 20_000, attribution: nil)  // warm up
        let without = try Self.run(flows: flows, attribution: nil)
        // The flow's side alone: a log whose writer is not started (the queue holds them all).
        let queued = AttributionLog(directory: dir, settings: AttributionSettings(), logger: Logger(label: "measure"))
        let hotPath = try Self.run(flows: AttributionLog.queueLimit / 2 - 1, attribution: queued)
        let log = AttributionLog(directory: dir, settings: AttributionSettings(), logger: Logger(label: "measure"))
        log.start()
        let with = try Self.run(flows: flows, attribution: log)
        print(String(format: "attribution cost: %.2f µs CPU per flow without the log; %.2f µs with it queued only (the flow's path, +%.2f); %.2f µs with the writer too: +%.2f µs per flow (open and close)",
                     without * 1e6, hotPath * 1e6, (hotPath - without) * 1e6, with * 1e6, (with - without) * 1e6))
    }
}
