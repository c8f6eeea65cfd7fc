import Foundation
import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

@Suite("Static zone files: read once, and never overlapped by a private domain")
struct StaticZoneFilesTests {
    static func zoneText(_ origin: String, serial: Int) -> String {
        """
        $ORIGIN \(origin).
        $TTL 300
        @ IN SOA ns1.\(origin). hostmaster.\(origin). ( \(serial) 3600 600 604800 300 )
          IN NS ns1.\(origin).
        ns1 IN A 192.0.2.\(serial % 200 + 1)

        """
    }

    /// engineConfig (a service with privateDomain api.provider.example) serving `zoneFile`.
    static func catalog(zoneFile: String) throws -> Catalog {
        var configuration = try Configuration.parse(yaml: engineConfig, file: "t")
        configuration.dns.zoneFiles = [zoneFile]
        return try Catalog(configuration: configuration, file: "t")
    }

    @Test(arguments: ["provider.example", "api.provider.example", "v1.api.provider.example"])
    func aStaticZoneOverlappingAPrivateDomainIsRefused(origin: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zl-static-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("zone").path
        try Self.zoneText(origin, serial: 1).write(toFile: path, atomically: true, encoding: .utf8)
        let catalog = try Self.catalog(zoneFile: path)
        do {
            _ = try catalog.loadStaticZones(file: "t")
            Issue.record("a static zone \(origin) beside the private domain api.provider.example was accepted")
        } catch {
            #expect(error.issues.contains { $0.keyPath == "endpointServices[0].privateDomain" && $0.problem.contains("overlaps the static zone") }, "\(error)")
        }
    }

    @Test func aFileIsParsedAgainOnlyWhenItChanged() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zl-static-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("zone").path
        try Self.zoneText("static.test", serial: 1).write(toFile: path, atomically: true, encoding: .utf8)
        let files = StaticZoneFiles()
        let catalog = try Self.catalog(zoneFile: path)
        func address() throws -> [UInt8]? {
            let zones = try catalog.loadStaticZones(file: "t", reusing: files)
            return zones[0].answer(DNSName("ns1.static.test")!, .a).answer.first?.records.first
        }
        #expect(try address() == [192, 0, 2, 2])
        #expect(try address() == [192, 0, 2, 2])
        // An edit (a new file put in place, as editors and deploy tools do) is read.
        try Self.zoneText("static.test", serial: 2).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try address() == [192, 0, 2, 3])
    }
}
