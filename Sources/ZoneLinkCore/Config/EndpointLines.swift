import Dispatch
import Synchronization

/// The top-level `endpoints` list written the way generators and large catalogs write it, one
/// flow mapping per line:
///
/// ```yaml
/// endpoints:
///   - {id: ep-1, account: c1, service: epsrv-web, vpc: vpc-1, zones: [{zone: eu-central-1a, vswitch: vsw-1a}]}
/// ```
///
/// read straight from the bytes instead of through libyaml. At 100,000 endpoints that list is
/// nearly all of the file, and libyaml's scanner and parser (a token, an event and a copied
/// string per scalar, some 3 million of them) were most of the cost of reading it.
///
/// What it reads is a strict subset of YAML whose meaning leaves no room for doubt: in each
/// line, `- ` at one indentation and a flow mapping; in that, plain scalars of letters, digits,
/// '.', '_' and '-' starting with a letter or digit, double-quoted scalars of printable ASCII
/// without escapes, flow mappings (`key: value`, no key twice) and flow lists of those, nested at
/// most `maxDepth` deep. Anything else in the list (a comment, a blank line, a tab, a
/// block-style element, an anchor, an alias, a tag, an element over two lines, CR LF line ends)
/// and the whole text is read by libyaml as before. So the subset only ever decides which reader
/// reads, never what a text means. The rest of the document is read by libyaml with the list
/// replaced by `[]` after the same key (`reducedText`), and the split holds only if libyaml
/// finds that `[]` where it was put, as the value of the top-level `endpoints` key
/// (`Configuration.readEvents`).
struct EndpointLines {
    /// Collections nested deeper than this in one element: the text goes to libyaml. An
    /// endpoint needs three (the endpoint, its `zones`, one zone).
    static let maxDepth = 6
    /// Keys longer than this: the text goes to libyaml, which allows at most 1,024 characters
    /// for a key and words the refusal itself.
    static let maxKeyLength = 128
    /// Keys in one mapping beyond this: the text goes to libyaml (duplicates are judged by
    /// comparing each key with the ones before it, which stays cheap only for few keys).
    static let maxKeys = 16

    /// Byte offset of the line break ending the `endpoints:` line.
    let keyLineEnd: Int
    /// Byte offsets of the first element line and of the first byte after the last one.
    let listStart: Int, listEnd: Int
    /// Spaces in front of each element's `- `.
    let indent: Int

    /// Finds a top-level `endpoints:` line (at the start of a line, nothing after the colon)
    /// followed by lines that each start with `- {` at one indentation, up to a line that
    /// starts with none of ' ', '\t', '#', '-', CR, LF (the next top-level key) or the end of
    /// the text. Nil when there is no such list, or when anything else comes first.
    static func locate(in bytes: UnsafeBufferPointer<UInt8>) -> EndpointLines? {
        let key = Array("endpoints:\n".utf8)
        var keyStart = -1
        var lineStart = 0
        while lineStart + key.count <= bytes.count {
            if bytes[lineStart] == key[0], (0..<key.count).allSatisfy({ bytes[lineStart + $0] == key[$0] }) {
                keyStart = lineStart
                break
            }
            guard let end = lineEnd(bytes, from: lineStart) else { return nil }
            lineStart = end + 1
        }
        guard keyStart >= 0 else { return nil }
        let keyLineEnd = keyStart + key.count - 1
        let listStart = keyLineEnd + 1
        var indent = 0
        while listStart + indent < bytes.count, bytes[listStart + indent] == UInt8(ascii: " ") { indent += 1 }
        guard isElementLine(bytes, at: listStart, indent: indent) else { return nil }
        var at = listStart
        while at < bytes.count {
            if isElementLine(bytes, at: at, indent: indent) {
                at = lineEnd(bytes, from: at).map { $0 + 1 } ?? bytes.count
                continue
            }
            switch bytes[at] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "#"), UInt8(ascii: "-"), UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                return nil
            default:
                return EndpointLines(keyLineEnd: keyLineEnd, listStart: listStart, listEnd: at, indent: indent)
            }
        }
        return EndpointLines(keyLineEnd: keyLineEnd, listStart: listStart, listEnd: bytes.count, indent: indent)
    }

    /// The text libyaml reads in place of the whole: the list replaced by ` []` on the key's
    /// line, and where that `[` is, counted in characters as libyaml counts (`yaml_mark_t.index`).
    func reducedText(of bytes: UnsafeBufferPointer<UInt8>) -> (text: [UInt8], placeholder: Int) {
        var text: [UInt8] = []
        text.reserveCapacity(keyLineEnd + 4 + bytes.count - listEnd)
        text.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[..<keyLineEnd]))
        text.append(contentsOf: " []\n".utf8)
        text.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[listEnd...]))
        // Characters, not bytes: every UTF-8 byte but a continuation byte starts one.
        var characters = 0
        for byte in UnsafeBufferPointer(rebasing: bytes[..<keyLineEnd]) where byte & 0xC0 != 0x80 { characters += 1 }
        return (text, characters + 1)
    }

    /// One element line as read: an endpoint written the plain way (what
    /// `ConfigParser.plainEndpoint` accepts: known keys, each once, every value well-formed),
    /// or the node libyaml would have built for any other.
    enum Element {
        case plain(Endpoint)
        case node(YAMLValue)
    }

    /// Reads the element lines in order, handing each to `plain` or `element` (`Element`).
    /// False as soon as a line is outside the subset (the caller then discards what it was
    /// handed and reads the whole text with libyaml).
    ///
    /// The two halves of the list are read side by side on two threads (lines are independent,
    /// and at 100,000 endpoints reading them is a quarter of a second, on the way of every start
    /// and reload); what they read is handed over in order afterwards, on this thread.
    func readElements(
        of bytes: UnsafeBufferPointer<UInt8>, plain: (Endpoint) -> Void, element: (YAMLValue) -> Void
    ) -> Bool {
        // The first line starting at or after the middle: every line of the list is an element.
        var middle = listStart + (listEnd - listStart) / 2
        while middle < listEnd && middle > listStart && bytes[middle - 1] != UInt8(ascii: "\n") { middle += 1 }
        let halves = [listStart..<middle, middle..<listEnd]
        let read = Mutex<[[Element]?]>([nil, nil])
        let base = UInt(bitPattern: bytes.baseAddress), count = bytes.count
        DispatchQueue.concurrentPerform(iterations: halves.count) { half in
            let bytes = UnsafeBufferPointer(start: UnsafePointer<UInt8>(bitPattern: base), count: count)
            let elements = readElements(of: bytes, lines: halves[half])
            read.withLock { $0[half] = elements }
        }
        let elements = read.withLock { $0 }
        guard let first = elements[0], let second = elements[1] else { return false }
        for read in [first, second] {
            for item in read {
                switch item {
                case .plain(let endpoint): plain(endpoint)
                case .node(let node): element(node)
                }
            }
        }
        return true
    }

    /// The elements of the lines in `lines` (which start and end at line starts), in order;
    /// nil when one is outside the subset.
    private func readElements(of bytes: UnsafeBufferPointer<UInt8>, lines: Range<Int>) -> [Element]? {
        var elements: [Element] = []
        var line = lines.lowerBound
        while line < lines.upperBound {
            let start = line + indent + 2
            var reader = LineReader(bytes: bytes, at: start)
            if let endpoint = reader.plainEndpoint(), reader.endsLine() {
                elements.append(.plain(endpoint))
            } else {
                reader = LineReader(bytes: bytes, at: start)
                guard let node = reader.node(depth: 1), case .mapping = node, reader.endsLine() else { return nil }
                elements.append(.node(node))
            }
            line = reader.at
        }
        return line == lines.upperBound ? elements : nil
    }

    private static func isElementLine(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int, indent: Int) -> Bool {
        guard start + indent + 3 <= bytes.count else { return false }
        for offset in 0..<indent where bytes[start + offset] != UInt8(ascii: " ") { return false }
        return bytes[start + indent] == UInt8(ascii: "-") && bytes[start + indent + 1] == UInt8(ascii: " ")
            && bytes[start + indent + 2] == UInt8(ascii: "{")
    }

    /// The offset of the line break ending the line that starts at `start`; nil when the text
    /// ends first.
    private static func lineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var at = start
        while at < bytes.count {
            if bytes[at] == UInt8(ascii: "\n") { return at }
            at += 1
        }
        return nil
    }
}

/// Reads one node of the subset from `at`, leaving `at` after it; nil for anything outside the
/// subset. A value type with the offset in a local: the loop runs once per byte of the list.
private struct LineReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var at: Int

    /// Skips trailing spaces and the line break (or stops at the end of the text); false when
    /// anything else follows the element.
    mutating func endsLine() -> Bool {
        skipSpaces()
        guard at < bytes.count else { return true }
        guard bytes[at] == UInt8(ascii: "\n") else { return false }
        at += 1
        return true
    }

    mutating func node(depth: Int) -> YAMLValue? {
        guard at < bytes.count else { return nil }
        switch bytes[at] {
        case UInt8(ascii: "{"):
            guard depth <= EndpointLines.maxDepth else { return nil }
            return mapping(depth: depth)
        case UInt8(ascii: "["):
            guard depth <= EndpointLines.maxDepth else { return nil }
            return sequence(depth: depth)
        default:
            return scalar().map { .scalar(YAMLScalar(string: $0)) }
        }
    }

    private mutating func mapping(depth: Int) -> YAMLValue? {
        at += 1
        skipSpaces()
        if peek(UInt8(ascii: "}")) { at += 1; return .mapping([]) }
        var pairs: [(YAMLValue, YAMLValue)] = []
        while true {
            let keyStart = at
            guard let key = scalar(), at - keyStart <= EndpointLines.maxKeyLength, pairs.count < EndpointLines.maxKeys,
                  !pairs.contains(where: { if case .scalar(let earlier) = $0.0 { earlier.string == key } else { false } }),
                  peek(UInt8(ascii: ":"))
            else { return nil }
            at += 1
            guard peek(UInt8(ascii: " ")) else { return nil }
            skipSpaces()
            guard let value = node(depth: depth + 1) else { return nil }
            pairs.append((.scalar(YAMLScalar(string: key)), value))
            skipSpaces()
            guard at < bytes.count else { return nil }
            if bytes[at] == UInt8(ascii: "}") { at += 1; return .mapping(pairs) }
            guard bytes[at] == UInt8(ascii: ",") else { return nil }
            at += 1
            skipSpaces()
        }
    }

    private mutating func sequence(depth: Int) -> YAMLValue? {
        at += 1
        skipSpaces()
        if peek(UInt8(ascii: "]")) { at += 1; return .sequence([]) }
        var items: [YAMLValue] = []
        while true {
            guard let item = node(depth: depth + 1) else { return nil }
            items.append(item)
            skipSpaces()
            guard at < bytes.count else { return nil }
            if bytes[at] == UInt8(ascii: "]") { at += 1; return .sequence(items) }
            guard bytes[at] == UInt8(ascii: ",") else { return nil }
            at += 1
            skipSpaces()
        }
    }

    /// A plain scalar of the subset's characters, or a double-quoted one of printable ASCII
    /// without escapes; its text.
    private mutating func scalar() -> String? {
        scalarText().map { String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
    }

    /// Where the text of the scalar at `at` lies (without the quotes of a quoted one).
    private mutating func scalarText() -> Range<Int>? {
        guard at < bytes.count else { return nil }
        if bytes[at] == UInt8(ascii: "\"") {
            let start = at + 1
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
                guard bytes[end] >= 0x20, bytes[end] <= 0x7E, bytes[end] != UInt8(ascii: "\\") else { return nil }
                end += 1
            }
            guard end < bytes.count else { return nil }
            at = end + 1
            return start..<end
        }
        guard Self.isAlphanumeric(bytes[at]) else { return nil }
        let start = at
        at += 1
        while at < bytes.count, Self.isAlphanumeric(bytes[at]) || bytes[at] == UInt8(ascii: "-") || bytes[at] == UInt8(ascii: ".")
            || bytes[at] == UInt8(ascii: "_") {
            at += 1
        }
        return start..<at
    }

    // MARK: Plain endpoints

    /// The endpoint at `at` when it is written the plain way, read without a node; nil for
    /// anything else (the caller reads the element again as a node). What it accepts, and the
    /// `Endpoint` it gives, are `ConfigParser.plainEndpoint`'s of the node `node(depth:)` reads.
    mutating func plainEndpoint() -> Endpoint? {
        var id: String?, account: String?, service: String?, vpc: String?
        var groups: [String]?, enis: [ENI]?
        var connection: ConnectionState?, hasConnection = false
        let read = mappingPairs { reader, key in
            switch key {
            case Self.id: guard id == nil, let text = reader.nonEmptyScalar() else { return false }; id = text
            case Self.account: guard account == nil, let text = reader.nonEmptyScalar() else { return false }; account = text
            case Self.service: guard service == nil, let text = reader.nonEmptyScalar() else { return false }; service = text
            case Self.vpc: guard vpc == nil, let text = reader.nonEmptyScalar() else { return false }; vpc = text
            case Self.securityGroups:
                guard groups == nil else { return false }
                var names: [String] = []
                guard reader.sequenceItems({ reader in
                    guard let name = reader.nonEmptyScalar() else { return false }
                    names.append(name)
                    return true
                }) else { return false }
                groups = names
            case Self.zones:
                guard enis == nil else { return false }
                var read: [ENI] = []
                guard reader.sequenceItems({ reader in
                    guard let eni = reader.plainENI() else { return false }
                    read.append(eni)
                    return true
                }) else { return false }
                enis = read
            case Self.connection:
                guard !hasConnection, let text = reader.nonEmptyScalar(), let state = ConnectionState(rawValue: text) else { return false }
                connection = state
                hasConnection = true
            default:
                return false
            }
            return true
        }
        guard read, let id, let account, let service, let vpc, let enis else { return nil }
        return Endpoint(
            id: id, account: account, service: service, vpc: vpc, securityGroups: groups ?? [], enis: enis,
            connection: connection)
    }

    /// One `zones` entry of `plainEndpoint`: `{zone, vswitch[, address]}`, each once and well-formed.
    private mutating func plainENI() -> ENI? {
        var zone: String?, vswitch: String?, address: IPv4Address?, hasAddress = false
        let read = mappingPairs { reader, key in
            switch key {
            case Self.zone: guard zone == nil, let text = reader.nonEmptyScalar() else { return false }; zone = text
            case Self.vswitch: guard vswitch == nil, let text = reader.nonEmptyScalar() else { return false }; vswitch = text
            case Self.address:
                guard !hasAddress, let text = reader.nonEmptyScalar(), let parsed = IPv4Address(text) else { return false }
                address = parsed
                hasAddress = true
            default:
                return false
            }
            return true
        }
        guard read, let zone, let vswitch else { return nil }
        return hasAddress ? ENI(zone: zone, vswitch: vswitch, address: address) : ENI(zone: zone, vswitch: vswitch)
    }

    /// A flow mapping's pairs, each key (a scalar of at most `maxKeyLength` bytes, as
    /// `mapping(depth:)` allows) handed to `value` with the reader at its value; false when
    /// the mapping is outside the subset or `value` says no.
    private mutating func mappingPairs(_ value: (inout LineReader, PlainKey) -> Bool) -> Bool {
        guard peek(UInt8(ascii: "{")) else { return false }
        at += 1
        skipSpaces()
        if peek(UInt8(ascii: "}")) { at += 1; return true }
        while true {
            guard let key = scalarText(), key.count <= EndpointLines.maxKeyLength, peek(UInt8(ascii: ":")) else { return false }
            at += 1
            guard peek(UInt8(ascii: " ")) else { return false }
            skipSpaces()
            guard value(&self, PlainKey(UnsafeBufferPointer(rebasing: bytes[key]))) else { return false }
            skipSpaces()
            guard at < bytes.count else { return false }
            if bytes[at] == UInt8(ascii: "}") { at += 1; return true }
            guard bytes[at] == UInt8(ascii: ",") else { return false }
            at += 1
            skipSpaces()
        }
    }

    /// A flow list's items, each read by `item`; false when the list is outside the subset or
    /// `item` says no.
    private mutating func sequenceItems(_ item: (inout LineReader) -> Bool) -> Bool {
        guard peek(UInt8(ascii: "[")) else { return false }
        at += 1
        skipSpaces()
        if peek(UInt8(ascii: "]")) { at += 1; return true }
        while true {
            guard item(&self) else { return false }
            skipSpaces()
            guard at < bytes.count else { return false }
            if bytes[at] == UInt8(ascii: "]") { at += 1; return true }
            guard bytes[at] == UInt8(ascii: ",") else { return false }
            at += 1
            skipSpaces()
        }
    }

    /// The keys of a plain endpoint and its zones, compared as bytes (no string built per key).
    private static let id = PlainKey("id"), account = PlainKey("account"), service = PlainKey("service"), vpc = PlainKey("vpc")
    private static let securityGroups = PlainKey("securityGroups"), zones = PlainKey("zones"), connection = PlainKey("connection")
    private static let zone = PlainKey("zone"), vswitch = PlainKey("vswitch"), address = PlainKey("address")

    /// What `YAMLReader.string` accepts without an issue: a non-empty scalar (a plain one of
    /// the subset never is empty).
    private mutating func nonEmptyScalar() -> String? {
        guard let text = scalar(), !text.isEmpty else { return nil }
        return text
    }

    private func peek(_ byte: UInt8) -> Bool { at < bytes.count && bytes[at] == byte }

    private mutating func skipSpaces() {
        while at < bytes.count, bytes[at] == UInt8(ascii: " ") { at += 1 }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
    }
}

/// A key of a plain endpoint, up to 16 bytes packed in two integers (longer keys are none of
/// them, and pack to a value no known key has).
private struct PlainKey: Equatable {
    var low: UInt64 = 0, high: UInt64 = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.count <= 16 else { low = .max; high = .max; return }
        for (i, byte) in bytes.enumerated() {
            if i < 8 { low |= UInt64(byte) << (8 * i) } else { high |= UInt64(byte) << (8 * (i - 8)) }
        }
    }

    init(_ name: StaticString) {
        self.init(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    static func ~= (pattern: PlainKey, value: PlainKey) -> Bool { pattern == value }
}
