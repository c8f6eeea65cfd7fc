import Foundation
import Testing
@testable import ZoneLinkCore

/// The config is read from libyaml's events (`YAMLEventReader`), endpoints streamed one at a
/// time; Yams' node tree is the reference. Both must give the same `Configuration`, or the same
/// issues in the same order, for every config in the repository and for mutations of them.
@Suite("The streaming config reader agrees with the node-tree reader")
struct ConfigReaderTests {
    /// Every `zones/*.yaml`, every YAML block of the docs, and every multi-line string literal of
    /// the test sources (most are configs or parts of one; the rest are hostile input for free).
    static let corpus: [(name: String, text: String)] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var corpus: [(String, String)] = []
        let files = FileManager.default
        func read(_ url: URL) -> String? { try? String(contentsOf: url, encoding: .utf8) }
        for name in (try? files.contentsOfDirectory(atPath: root.appendingPathComponent("zones").path)) ?? [] where name.hasSuffix(".yaml") {
            if let text = read(root.appendingPathComponent("zones/\(name)")) { corpus.append(("zones/\(name)", text)) }
        }
        var documents = ["README.md", "ARCHITECTURE.md"]
        documents += ((try? files.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)) ?? [])
            .filter { $0.hasSuffix(".md") }.map { "docs/\($0)" }
        for name in documents {
            guard let text = read(root.appendingPathComponent(name)) else { continue }
            for (index, block) in blocks(of: text, opening: { $0.hasPrefix("```yaml") }, closing: { $0.hasPrefix("```") }).enumerated() {
                corpus.append(("\(name) yaml block \(index)", block))
            }
        }
        let tests = root.appendingPathComponent("Tests")
        let enumerator = files.enumerator(atPath: tests.path)
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".swift"), let text = read(tests.appendingPathComponent(path)) else { continue }
            for (index, literal) in blocks(
                of: text, opening: { $0.hasSuffix("\"\"\"") && $0 != "\"\"\"" && !$0.hasPrefix("\"\"\"") },
                closing: { $0.hasPrefix("\"\"\"") }
            ).enumerated() {
                corpus.append(("Tests/\(path) literal \(index)", literal))
            }
        }
        return corpus
    }()

    /// The lines between an opening and a closing line (both judged trimmed), less the closing
    /// line's indentation, as Swift does for a multi-line literal.
    static func blocks(of text: String, opening: (String) -> Bool, closing: (String) -> Bool) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if var lines = current {
                if closing(trimmed) {
                    let indent = line.prefix { $0 == " " }.count
                    blocks.append(lines.map { $0.prefix(indent).allSatisfy { $0 == " " } ? String($0.dropFirst(indent)) : String($0) }
                        .joined(separator: "\n") + "\n")
                    current = nil
                } else {
                    lines.append(line)
                    current = lines
                }
            } else if opening(trimmed) {
                current = []
            }
        }
        return blocks
    }

    enum Outcome: Equatable {
        case read(Configuration)
        case refused([ConfigIssue])
    }

    static func streaming(_ text: String) -> Outcome {
        do { return .read(try Configuration.parse(yaml: text, file: "t.yaml")) } catch { return .refused(error.issues) }
    }

    static func nodeTree(_ text: String) -> Outcome {
        do { return .read(try Configuration.parseThroughNodeTree(yaml: text, file: "t.yaml")) } catch { return .refused(error.issues) }
    }

    @Test func theCorpusIsFound() {
        #expect(Self.corpus.contains { $0.name == "zones/local.yaml" })
        #expect(Self.corpus.contains { $0.name.hasPrefix("docs/config.md") })
        #expect(Self.corpus.count > 50, "only \(Self.corpus.count) texts: is the repository layout still the one the test walks?")
        let valid = Self.corpus.filter { if case .read = Self.nodeTree($0.text) { true } else { false } }
        #expect(valid.count >= 8, "only \(valid.count) of the texts are valid configs")
    }

    @Test func everyTextOfTheRepositoryReadsTheSame() {
        for (name, text) in Self.corpus {
            #expect(Self.streaming(text) == Self.nodeTree(text), "\(name)")
        }
    }

    /// Deterministic mutations of every text: a line dropped, doubled, cut short or re-indented,
    /// a character replaced. Valid or not, both readers must say the same.
    @Test func mutatedTextsReadTheSame() {
        var random = SplitMix(seed: 0x5ca1e)
        let replacements: [Character] = [":", "-", " ", "{", "}", "[", "]", ",", "\"", "'", "#", "x", "0", "\n", "\t", "&", "*", "!", "|"]
        var compared = 0
        for (name, text) in Self.corpus {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard lines.count > 1 else { continue }
            for round in 0..<12 {
                var mutated = lines
                let at = Int(random.next() % UInt64(lines.count))
                switch round % 6 {
                case 0: mutated.remove(at: at)
                case 1: mutated.insert(lines[at], at: at)
                case 2: mutated[at] = String(lines[at].prefix(Int(random.next() % UInt64(lines[at].count + 1))))
                case 3: mutated[at] = "  " + lines[at]
                case 4: mutated[at] = String(lines[at].dropFirst(2))
                default:
                    var characters = Array(lines[at])
                    guard !characters.isEmpty else { continue }
                    characters[Int(random.next() % UInt64(characters.count))] = replacements[Int(random.next() % UInt64(replacements.count))]
                    mutated[at] = String(characters)
                }
                let variant = mutated.joined(separator: "\n")
                #expect(Self.streaming(variant) == Self.nodeTree(variant), "\(name), mutation \(round) at line \(at + 1):\n\(variant)")
                compared += 1
            }
        }
        #expect(compared > 500)
    }

    /// Anchors and aliases within the limit read as Yams reads them, also inside streamed endpoints.
    @Test func aliasesReadTheSame() throws {
        let text = baseConfig.replacingOccurrences(of: "securityGroups: [sg-1]", with: "securityGroups: &g [sg-1]")
            .replacingOccurrences(of: "vpc: vpc-3\n", with: "vpc: vpc-3\n    securityGroups: *g\n")
        guard case .read(let configuration) = Self.streaming(text) else { Issue.record("refused"); return }
        #expect(configuration.endpoints.map(\.securityGroups) == [["sg-1"], ["sg-1"]])
        #expect(Self.streaming(text) == Self.nodeTree(text))
        let aliased = """
            region: eu-central-1
            domain: &domain privatelink.internal
            endpoints:
              - {id: ep-1, account: a, service: s, vpc: &vpc vpc-1, zones: &zones [{zone: z1, vswitch: v1}]}
              - {id: ep-2, account: a, service: s, vpc: *vpc, zones: *zones}
            """
        let read = try Configuration.parse(yaml: aliased, file: "t")
        #expect(read.endpoints.map(\.vpc) == ["vpc-1", "vpc-1"] && read.endpoints[1].enis == read.endpoints[0].enis)
        #expect(Self.streaming(aliased) == Self.nodeTree(aliased))
    }

    /// "Billion laughs": a few hundred bytes of nested aliases standing for billions of nodes.
    @Test func aliasesThatExpandTooFarAreRefused() {
        var text = "region: eu-central-1\ndomain: privatelink.internal\nx0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for level in 1...9 {
            text += "x\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        text += "endpoints: *l9\n"
        #expect(Self.streaming(text) == .refused([ConfigIssue(
            "", "uses aliases that stand for more than \(YAMLEventReader.aliasedNodeLimit) nodes",
            hint: "write the values out, or use fewer aliases to large anchors")]))
    }

    /// What Yams words (syntax, duplicate keys, undefined aliases, two documents, nesting past
    /// libyaml's limit of 1,000) reaches the user in Yams' words, with the position.
    @Test func yamlProblemsKeepYamsMessages() {
        let texts = [
            "region: a\nregion: b\ndomain: d\n",
            "region: a\ndomain: d\nendpoints:\n  - {id: e, id: f}\n",
            "region: *nowhere\ndomain: d\n",
            "region: a\ndomain: d\n---\nregion: b\n",
            "region: [a\ndomain: d\n",
            "region: a\ndomain: d\nx: " + String(repeating: "[", count: 2_000) + String(repeating: "]", count: 2_000) + "\n",
        ]
        for text in texts {
            let outcome = Self.streaming(text)
            #expect(outcome == Self.nodeTree(text))
            guard case .refused(let issues) = outcome else { Issue.record("accepted: \(text.prefix(80))"); continue }
            #expect(issues.count == 1 && issues[0].problem.hasPrefix("is not valid YAML"), "\(issues)")
        }
    }

    /// A wide, plain endpoint list, the shape of a large catalog, streamed and read the same;
    /// one bad endpoint among them is reported at its index as before.
    @Test func aLongEndpointListReadsTheSame() {
        var text = baseConfig + "\n"
        for n in 0..<2_000 {
            text += "  - {id: ep-x\(n), account: consumer, service: epsrv-web, vpc: vpc-consumer, securityGroups: [sg-web], "
                + "zones: [{zone: eu-central-1a, vswitch: vsw-ca, address: 10.1.\(n / 200).\(n % 200 + 20)}], connection: Connected}\n"
        }
        #expect(Self.streaming(text) == Self.nodeTree(text))
        let broken = text.replacingOccurrences(of: "10.1.3.50}", with: "10.1.3.500}")
        let outcome = Self.streaming(broken)
        #expect(outcome == Self.nodeTree(broken))
        guard case .refused(let issues) = outcome else { Issue.record("accepted"); return }
        #expect(issues.contains { $0.keyPath.hasSuffix(".zones[0].address") && $0.problem.contains("10.1.3.500") })
    }
}

/// A small deterministic generator (SplitMix64), so every run mutates the same way.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
