import Foundation
import Testing
import ZoneLinkCore
import ZoneLinkDNS

/// Every config in `zones/`, the one `scripts/install` puts in /etc, and every YAML example in
/// the README and docs/config.md still parses and validates,
/// zone files included, so the docs cannot rot.
@Suite("Example configs")
struct ExampleConfigTests {
    static var shippedConfigs: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(packageRoot)/zones")) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { "zones/\($0)" } + ["systemd/zonelink.yaml"]
    }

    /// The fenced ```yaml blocks of a Markdown file.
    static func yamlBlocks(in file: String) throws -> [String] {
        let text = try String(contentsOfFile: "\(packageRoot)/\(file)", encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line.hasPrefix("```yaml") {
                current = []
            } else if current != nil, line.hasPrefix("```") {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    /// Validates a config with its zone files, relative paths taken from the package root.
    static func validate(yaml: String, file: String) throws {
        var configuration = try Configuration.parse(yaml: yaml, file: file)
        configuration.dns.zoneFiles = configuration.dns.zoneFiles.map { $0.hasPrefix("/") ? $0 : "\(packageRoot)/\($0)" }
        let catalog = try Catalog(configuration: configuration, file: file)
        _ = try catalog.loadStaticZones(file: file)
    }

    @Test func atLeastTheTwoShippedConfigsExist() {
        #expect(Self.shippedConfigs.contains("zones/local.yaml") && Self.shippedConfigs.contains("zones/frankfurt.yaml"))
    }

    @Test(arguments: shippedConfigs)
    func shippedConfigIsValid(_ file: String) throws {
        try Self.validate(yaml: String(contentsOfFile: "\(packageRoot)/\(file)", encoding: .utf8), file: file)
    }

    @Test(arguments: ["README.md", "docs/config.md"])
    func documentedExamplesAreValid(_ document: String) throws {
        let blocks = try Self.yamlBlocks(in: document)
        #expect(!blocks.isEmpty)
        for (i, block) in blocks.enumerated() {
            try Self.validate(yaml: block, file: "\(document) yaml block \(i + 1)")
        }
    }
}
