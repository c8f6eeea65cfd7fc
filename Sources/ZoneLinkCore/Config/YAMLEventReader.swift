// libyaml as Yams vendors and builds it: the same C library, header and limits (among them
// its nesting limit) as Yams' own parser, so the two readers cannot disagree on what YAML is.
// It is a target of the Yams package, not a product; SwiftPM hands every module a target
// depends on to its dependants' compiler, which is what makes it importable here.
import CYaml

/// Why the event reader gave up on a document.
enum YAMLReadFailure: Error {
    /// Something the node-tree reader words better, or that this reader does not judge itself:
    /// invalid YAML, a duplicate or non-string key, an undefined alias, a second document.
    /// The caller reads the text through Yams' node tree instead, which gives the user the same
    /// message as ever (with its line and column).
    case unusual
    /// Input refused outright (aliases that expand past `YAMLEventReader.aliasedNodeLimit`).
    case refused(ConfigIssue)
}

/// Reads a config's YAML from libyaml's events, building a small `YAMLValue` per node as it goes,
/// never Yams' node tree of the whole document.
///
/// The top-level `endpoints` list, most of a large catalog's text, is handed over one element at
/// a time (`readDocument(endpoint:)`), so its elements are parsed and dropped as they are read.
/// Not `Sendable`: one reader reads one document on one thread.
final class YAMLEventReader {
    /// The most nodes a document may reach through aliases, each use of an alias counting every
    /// node it stands for (aliases inside it included). An alias costs the reader nothing, but
    /// each node it reaches is a node the parser walks: without a cap, a few kilobytes of nested
    /// aliases ("billion laughs") would make `zonelink check` or a reload walk billions.
    static let aliasedNodeLimit = 100_000

    private var parser = yaml_parser_t()
    private var event = yaml_event_t()
    private var holdsEvent = false
    private var anchors: [String: (value: YAMLValue, nodes: Int)] = [:]
    private var aliasedNodes = 0

    /// `bytes` must stay valid (and unchanged) while the reader is used.
    init(bytes: UnsafeBufferPointer<UInt8>) {
        yaml_parser_initialize(&parser)
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
    }

    deinit {
        if holdsEvent { yaml_event_delete(&event) }
        yaml_parser_delete(&parser)
    }

    /// Reads the one document of the stream. With `endpoint`, a top-level `endpoints` list is
    /// not kept: each element goes to `endpoint` as soon as it is read, and the list stands in
    /// the returned root as an empty one (`streamed` says whether that happened).
    /// Returns a nil root for an empty stream, and where the streamed list starts (`streamedAt`,
    /// in characters from the start of the text, as libyaml counts them).
    func readDocument(
        endpoint: ((YAMLValue) -> Void)? = nil
    ) throws(YAMLReadFailure) -> (root: YAMLValue?, streamed: Bool, streamedAt: Int?) {
        try next()
        guard event.type == YAML_STREAM_START_EVENT else { throw .unusual }
        try next()
        if event.type == YAML_STREAM_END_EVENT { return (nil, false, nil) }
        guard event.type == YAML_DOCUMENT_START_EVENT else { throw .unusual }
        try next()
        let root: YAMLValue
        var streamed = false
        var streamedAt: Int?
        if let endpoint, event.type == YAML_MAPPING_START_EVENT, event.data.mapping_start.anchor == nil {
            var pairs: [(YAMLValue, YAMLValue)] = []
            var keys = KeySet()
            while true {
                try next()
                if event.type == YAML_MAPPING_END_EVENT { break }
                let key = try value().value
                guard case .scalar(let name) = key, keys.insert(name.string) else { throw .unusual }
                try next()
                if name.string == "endpoints", event.type == YAML_SEQUENCE_START_EVENT,
                   event.data.sequence_start.anchor == nil {
                    streamedAt = Int(event.start_mark.index)
                    while true {
                        try next()
                        if event.type == YAML_SEQUENCE_END_EVENT { break }
                        endpoint(try value().value)
                    }
                    pairs.append((key, .sequence([])))
                    streamed = true
                } else {
                    pairs.append((key, try value().value))
                }
            }
            root = .mapping(pairs)
        } else {
            root = try value().value
        }
        try next()
        guard event.type == YAML_DOCUMENT_END_EVENT else { throw .unusual }
        try next()
        // A second document: Yams' message says so.
        guard event.type == YAML_STREAM_END_EVENT else { throw .unusual }
        return (root, streamed, streamedAt)
    }

    private func next() throws(YAMLReadFailure) {
        if holdsEvent {
            yaml_event_delete(&event)
            holdsEvent = false
        }
        guard yaml_parser_parse(&parser, &event) == 1 else { throw .unusual }
        holdsEvent = true
    }

    /// The node that starts at the current event, read up to its last event, and how many nodes
    /// it holds (what its aliases stand for included).
    private func value() throws(YAMLReadFailure) -> (value: YAMLValue, nodes: Int) {
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            let read = (value: YAMLValue.scalar(YAMLScalar(string: text)), nodes: 1)
            if let anchor = scalar.anchor { anchors[String(cString: anchor)] = read }
            return read
        case YAML_ALIAS_EVENT:
            // An alias to an anchor not (or not yet completely) read: Yams reports it.
            guard let name = event.data.alias.anchor, let target = anchors[String(cString: name)] else { throw .unusual }
            aliasedNodes += target.nodes
            guard aliasedNodes <= Self.aliasedNodeLimit else {
                throw .refused(ConfigIssue(
                    "", "uses aliases that stand for more than \(Self.aliasedNodeLimit) nodes",
                    hint: "write the values out, or use fewer aliases to large anchors"))
            }
            return target
        case YAML_SEQUENCE_START_EVENT:
            let anchor = event.data.sequence_start.anchor.map { String(cString: $0) }
            var items: [YAMLValue] = []
            var nodes = 1
            while true {
                try next()
                if event.type == YAML_SEQUENCE_END_EVENT { break }
                let item = try value()
                items.append(item.value)
                nodes += item.nodes
            }
            let read = (value: YAMLValue.sequence(items), nodes: nodes)
            if let anchor { anchors[anchor] = read }
            return read
        case YAML_MAPPING_START_EVENT:
            let anchor = event.data.mapping_start.anchor.map { String(cString: $0) }
            var pairs: [(YAMLValue, YAMLValue)] = []
            var keys = KeySet()
            var nodes = 1
            while true {
                try next()
                if event.type == YAML_MAPPING_END_EVENT { break }
                let key = try value()
                // Keys other than strings, and a key written twice: the node-tree reader's words.
                guard case .scalar(let name) = key.value, keys.insert(name.string) else { throw .unusual }
                try next()
                let item = try value()
                pairs.append((key.value, item.value))
                nodes += key.nodes + item.nodes
            }
            let read = (value: YAMLValue.mapping(pairs), nodes: nodes)
            if let anchor { anchors[anchor] = read }
            return read
        default:
            throw .unusual
        }
    }
}

/// The keys of one mapping so far: a short list while the mapping is short (a config's mappings
/// have a handful of keys, and a list beats hashing there), a set once it is long, so a hostile
/// mapping with many keys costs linear time, not quadratic.
private struct KeySet {
    private var few: [String] = []
    private var many: Set<String>?

    /// False if `key` was there already.
    mutating func insert(_ key: String) -> Bool {
        if many != nil { return many!.insert(key).inserted }
        if few.contains(key) { return false }
        few.append(key)
        if few.count > 16 { many = Set(few) }
        return true
    }
}
