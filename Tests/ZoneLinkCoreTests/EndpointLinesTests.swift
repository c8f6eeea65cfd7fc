import Foundation
import Testing
@testable import ZoneLinkCore

/// A top-level endpoint list of one flow mapping per line is read without libyaml
/// (`EndpointLines`). Whatever that reader takes must read exactly as Yams' node tree reads it;
/// whatever it cannot vouch for goes to libyaml, and then too the result is the node tree's.
@Suite("The endpoint lines read as the node tree reads them")
struct EndpointLinesTests {
    /// `baseConfig` with its endpoints written one per line, and `count` more of the plain shape.
    static func flowConfig(extra count: Int = 200) -> String {
        var text = baseConfig.components(separatedBy: "endpoints:\n")[0] + "endpoints:\n"
        text += "  - {id: ep-consumer1, account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, securityGroups: [sg-1], "
            + "zones: [{zone: eu-central-1a, vswitch: vsw-1a}, {zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.50}]}\n"
        text += "  - {id: ep-consumer3, account: account-c, service: epsrv-frankfurt1, vpc: vpc-3, "
            + "zones: [{zone: eu-central-1b, vswitch: vsw-3b, address: 10.10.2.50}]}\n"
        for n in 0..<count {
            text += "  - {id: ep-x\(n), account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, securityGroups: [sg-1], "
                + "zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.\(n + 20)}], connection: Connected}\n"
        }
        return text
    }

    static func sameAsNodeTree(_ text: String, _ comment: Comment? = nil) {
        #expect(ConfigReaderTests.streaming(text) == ConfigReaderTests.nodeTree(text), comment)
    }

    /// Whether the text is split: the list found, libyaml agreeing where it was, every line in the subset.
    static func isReadAsLines(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let lines = EndpointLines.locate(in: bytes) else { return false }
            return Configuration.readSplit(bytes, lines) != nil
        }
    }

    @Test func thePlainListIsReadAsLinesAndReadsTheSame() throws {
        let text = Self.flowConfig()
        #expect(Self.isReadAsLines(text))
        Self.sameAsNodeTree(text)
        let catalog = try Catalog(configuration: Configuration.parse(yaml: text, file: "t.yaml"), file: "t.yaml")
        #expect(catalog.endpoints.count == 202)
        #expect(catalog.endpoint("ep-x7")?.enis == [ENI(zone: "eu-central-1a", vswitch: "vsw-1a", address: IPv4Address("10.10.1.27"))])
    }

    /// What libyaml counts in characters, the split counts the same: a multi-byte character
    /// before the list moves the placeholder by one, not by its bytes.
    @Test func theSplitCountsCharactersAsLibyaml() {
        let text = "# Zürich, Genève\n" + Self.flowConfig(extra: 3)
        #expect(Self.isReadAsLines(text))
        Self.sameAsNodeTree(text)
    }

    /// Elements the subset reads but the plain path does not take (they are reported on), and
    /// texts the subset does not read at all: all read as the node tree reads them.
    @Test func unusualListsReadTheSame() {
        let plain = "  - {id: ep-x3, account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, securityGroups: [sg-1], "
            + "zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.23}], connection: Connected}\n"
        let text = Self.flowConfig(extra: 10)
        #expect(text.contains(plain))
        let variants: [(name: String, from: String, to: String)] = [
            ("unknown key", "connection: Connected}", "connection: Connected, zoneAfinity: true}"),
            ("bad address", "10.10.1.23}", "10.10.1.300}"),
            ("bad state", "Connected}", "Maybe}"),
            ("empty quoted value", "id: ep-x3", "id: \"\""),
            ("quoted values", "id: ep-x3, account: account-a", "id: \"ep-x3\", account: \"account-a\""),
            ("quoted key", "{id: ep-x3", "{\"id\": ep-x3"),
            ("quoted text with indicators", "id: ep-x3", "id: \"ep: #x, [y]\""),
            ("duplicate key", "id: ep-x3", "id: ep-x3, id: ep-x4"),
            ("duplicate zone key", "zone: eu-central-1a", "zone: eu-central-1a, zone: eu-central-1b"),
            ("trailing comment", "Connected}", "Connected} # note"),
            ("trailing comma", "Connected}", "Connected,}"),
            ("space before comma", "id: ep-x3,", "id: ep-x3 ,"),
            ("no space after colon", "id: ep-x3", "id:ep-x3"),
            ("space in a plain scalar", "id: ep-x3", "id: ep x3"),
            ("leading hyphen", "id: ep-x3", "id: -ep-x3"),
            ("leading dot", "id: ep-x3", "id: .ep-x3"),
            ("anchor", "vpc: vpc-1", "vpc: &v vpc-1"),
            ("undefined alias", "vpc: vpc-1", "vpc: *v"),
            ("tag", "vpc: vpc-1", "vpc: !!str vpc-1"),
            ("tab", "vpc: vpc-1", "vpc:\tvpc-1"),
            ("empty zones", "zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.23}]", "zones: []"),
            ("empty zone mapping", "zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.23}]", "zones: [{}]"),
            ("empty value", "vpc: vpc-1,", "vpc: ,"),
            ("nested deeper", "[sg-1]", "[[[[[[[sg-1]]]]]]]"),
            ("long key", "{id:", "{" + String(repeating: "k", count: 1_100) + ": 1, id:"),
            ("escape", "id: ep-x3", "id: \"ep\\u0041\""),
            ("non-ASCII", "id: ep-x3", "id: ep-zürich"),
            ("over two lines", "securityGroups: [sg-1], ", "securityGroups: [sg-1],\n    "),
            ("backslash", "id: ep-x3", "id: ep\\x3"),
            ("single quotes", "id: ep-x3", "id: 'ep-x3'"),
            ("spaces inside brackets", "[sg-1]", "[ sg-1 ]"),
            ("upper case", "id: ep-x3", "id: EP-X3"),
            ("a scalar for a list", "[sg-1]", "sg-1"),
            ("a list for a scalar", "vpc: vpc-1", "vpc: [vpc-1]"),
        ]
        for variant in variants {
            let edited = plain.replacingOccurrences(of: variant.from, with: variant.to)
            #expect(edited != plain, "\(variant.name): nothing replaced")
            Self.sameAsNodeTree(text.replacingOccurrences(of: plain, with: edited), "\(variant.name)")
        }
        let texts: [(String, String)] = [
            ("blank line in the list", text.replacingOccurrences(of: plain, with: plain + "\n")),
            ("comment line in the list", text.replacingOccurrences(of: plain, with: plain + "  # more\n")),
            ("comment at column 0 in the list", text.replacingOccurrences(of: plain, with: plain + "# more\n")),
            ("list at column 0", text.replacingOccurrences(of: "\n  - {", with: "\n- {")),
            ("one line indented more", text.replacingOccurrences(of: plain, with: "  " + plain)),
            ("CR LF", text.replacingOccurrences(of: "\n", with: "\r\n")),
            ("no final line break", String(text.dropLast())),
            ("a key after the list", text + "region: again\n"),
            ("an unknown key after the list", text + "extra: 1\n"),
            ("document end after the list", text + "...\n"),
            ("second document", text + "---\nregion: b\n"),
            ("the key twice", text + "endpoints:\n" + plain),
            ("list inside a quoted scalar", text.replacingOccurrences(of: "domain: privatelink.internal\n", with: "domain: \"privatelink.internal\n")
                .replacingOccurrences(of: "endpoints:\n", with: "endpoints:\n\"\nendpoints:\n")),
            ("byte order mark", "\u{FEFF}" + text),
            ("block element first", text.replacingOccurrences(of: "endpoints:\n", with: "endpoints:\n  - id: ep-block\n    account: account-a\n    service: epsrv-frankfurt1\n    vpc: vpc-1\n    zones: [{zone: eu-central-1a, vswitch: vsw-1a}]\n")),
            ("anchored list", text.replacingOccurrences(of: "endpoints:\n", with: "endpoints: &all\n")),
            ("list after a top-level block scalar", text.replacingOccurrences(of: "region: eu-central-1\n", with: "region: eu-central-1\nnote: |\n  endpoints:\n")),
        ]
        for (name, variant) in texts {
            Self.sameAsNodeTree(variant, "\(name)")
        }
        #expect(!Self.isReadAsLines(texts[0].1) && !Self.isReadAsLines(texts[1].1) && !Self.isReadAsLines(texts[5].1))
        #expect(Self.isReadAsLines(texts[3].1) && Self.isReadAsLines(texts[6].1) && Self.isReadAsLines(texts[8].1))
        // A key twice (here `region`) is Yams' to word: libyaml reads the rest, refuses, and the whole text is read again.
        #expect(!Self.isReadAsLines(texts[7].1) && !Self.isReadAsLines(texts[11].1) && !Self.isReadAsLines(texts[12].1))
    }

    /// Deterministic mutations of the element lines: a character replaced, dropped or doubled.
    /// Read by the lines or not, the result is the node tree's.
    @Test func mutatedLinesReadTheSame() {
        var random = SplitMix(seed: 0xe1e5)
        let text = Self.flowConfig(extra: 6)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let elements = lines.indices.filter { lines[$0].hasPrefix("  - {") }
        let replacements: [Character] = [":", "-", " ", "{", "}", "[", "]", ",", "\"", "'", "#", "x", "0", ".", "_", "\n", "\t", "&", "*", "!", "|", "\\", "é", "?", "%", "@", "`", ">"]
        var split = 0
        for round in 0..<600 {
            var mutated = lines
            let at = elements[Int(random.next() % UInt64(elements.count))]
            var characters = Array(lines[at])
            let position = Int(random.next() % UInt64(characters.count))
            switch round % 3 {
            case 0: characters[position] = replacements[Int(random.next() % UInt64(replacements.count))]
            case 1: characters.remove(at: position)
            default: characters.insert(characters[position], at: position)
            }
            mutated[at] = String(characters)
            let variant = mutated.joined(separator: "\n")
            if Self.isReadAsLines(variant) { split += 1 }
            Self.sameAsNodeTree(variant, "mutation \(round) of line \(at + 1): \(mutated[at])")
        }
        // Some mutations stay inside the subset (a letter for a letter), most leave it.
        #expect(split > 20 && split < 580, "\(split) of 600 read as lines")
    }
}

@Suite("Address checks find duplicates by sorting")
struct AddressDuplicatesTests {
    @Test func earlierDuplicatesNameTheFirst() {
        let addresses = [5, 3, 5, 7, 3, 5, 0xFFFF_FFFF, 0xFFFF_FFFF].map { IPv4Address(UInt32($0)) }
        #expect(CatalogValidator.earlierDuplicates(addresses) == [-1, -1, 0, -1, 1, 0, -1, 6])
        #expect(CatalogValidator.earlierDuplicates([]) == [])
    }

    /// VPCs without a namespace share the host's addresses: each address used again in another
    /// such VPC is reported at the later use, naming the first, in file order.
    @Test func hostNamespaceSharingIsReportedInOrder() {
        let yaml = baseConfig.replacingOccurrences(of: "    netns: vpc1\n", with: "")
            .replacingOccurrences(of: "    netns: vpc3\n", with: "    dnsAddress: 10.10.0.2\n")
        #expect(issues(yaml) == [
            ConfigIssue("vpcs[2].dnsAddress", "10.10.0.2 is also used by vpcs[0].dnsAddress (VPC vpc-1); both VPCs have no netns and share the host's addresses",
                        hint: "use another address, or give one of the VPCs a netns"),
            ConfigIssue("endpoints[1].zones[0].address", "10.10.2.50 is also used by endpoints[0].zones[1].address (VPC vpc-1); both VPCs have no netns and share the host's addresses",
                        hint: "use another address, or give one of the VPCs a netns"),
        ])
    }

    /// Within a VPC, each address used again is reported at each later use, naming the first.
    @Test func addressesTakenTwiceNameTheFirstOwner() {
        let yaml = baseConfig.replacingOccurrences(of: "{zone: eu-central-1a, vswitch: vsw-1a}", with: "{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.9}")
            + "\n  - {id: ep-consumer4, account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.9}, {zone: eu-central-1b, vswitch: vsw-1b, address: 10.10.2.50}]}\n"
            + "  - {id: ep-consumer5, account: account-a, service: epsrv-frankfurt1, vpc: vpc-1, zones: [{zone: eu-central-1a, vswitch: vsw-1a, address: 10.10.1.9}]}\n"
        let hint = "each address is used once within a VPC"
        #expect(issues(yaml) == [
            ConfigIssue("endpoints[2].zones[0].address", "10.10.1.9 is already taken in VPC vpc-1 by endpoints[0].zones[0].address", hint: hint),
            ConfigIssue("endpoints[2].zones[1].address", "10.10.2.50 is already taken in VPC vpc-1 by endpoints[0].zones[1].address", hint: hint),
            ConfigIssue("endpoints[3].zones[0].address", "10.10.1.9 is already taken in VPC vpc-1 by endpoints[0].zones[0].address", hint: hint),
        ])
    }
}
