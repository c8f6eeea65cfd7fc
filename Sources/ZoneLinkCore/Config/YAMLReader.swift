/// Walks a YAML document, reading typed values and collecting every problem with its key path.
///
/// It never stops at the first problem: a user who runs `zonelink check` wants the whole list.
/// Unknown keys are problems too, so a typo such as `zoneAfinity` cannot pass silently.
/// Not `Sendable`: one reader serves one parse on one thread.
final class YAMLReader {
    private(set) var issues: [ConfigIssue] = []
    /// Every key path a mapping read so far accepts, list indices written `[]`
    /// (`dns.listen[].address`): the schema as the parser knows it, which the docs test holds
    /// `docs/config.md` to.
    private(set) var acceptedKeys: Set<String> = []
    /// Whether to collect `acceptedKeys` (off when serving: a large config has many mappings).
    private let collectsKeys: Bool

    init(collectsKeys: Bool = false) {
        self.collectsKeys = collectsKeys
    }

    func report(_ path: String, _ problem: String, hint: String) {
        issues.append(ConfigIssue(path, problem, hint: hint))
    }

    /// A mapping's values by key, after reporting keys outside `allowed` and missing `required` ones.
    func mapping(
        _ node: YAMLValue?, at path: String, allowed: [String], required: [String] = []
    ) -> [String: YAMLValue]? {
        guard let node else {
            report(path, "is missing", hint: "add it; expected keys: \(allowed.joined(separator: ", "))")
            return nil
        }
        guard case .mapping(let mapping) = node else {
            report(path, "must be a mapping, not \(describe(node))", hint: "expected keys: \(allowed.joined(separator: ", "))")
            return nil
        }
        if collectsKeys {
            let schemaPath = path.replacing(/\[[^\]]*\]/, with: "[]")
            for key in allowed { acceptedKeys.insert(join(schemaPath, key)) }
        }
        var values: [String: YAMLValue] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                report(path, "has a key that is not a string", hint: "use plain keys")
                continue
            }
            let keyPath = join(path, key.string)
            if !allowed.contains(key.string) {
                let suggestion = closest(key.string, among: allowed).map { "did you mean '\($0)'? " } ?? ""
                report(keyPath, "unknown key", hint: "\(suggestion)allowed here: \(allowed.joined(separator: ", "))")
                continue
            }
            if values[key.string] != nil {
                report(keyPath, "appears twice", hint: "keep one")
                continue
            }
            values[key.string] = value
        }
        for key in required where values[key] == nil {
            report(join(path, key), "is missing", hint: "this key is required")
        }
        return values
    }

    /// Elements of a sequence with their key paths; nil (and nothing reported) when absent.
    func sequence(_ node: YAMLValue?, at path: String) -> [(node: YAMLValue, path: String)] {
        guard let node else { return [] }
        guard case .sequence(let sequence) = node else {
            report(path, "must be a list, not \(describe(node))", hint: "write it as [a, b] or as '- ' items")
            return []
        }
        return sequence.enumerated().map { ($0.element, "\(path)[\($0.offset)]") }
    }

    func string(_ node: YAMLValue?, at path: String) -> String? {
        guard let node else { return nil }
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else {
            report(path, "must be a non-empty string, not \(describe(node))", hint: "write a plain value")
            return nil
        }
        return scalar.string
    }

    func int(_ node: YAMLValue?, at path: String, range: ClosedRange<Int>) -> Int? {
        guard let node else { return nil }
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else {
            report(path, "must be a whole number, not \(describe(node))", hint: "between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        guard range.contains(value) else {
            report(path, "\(value) is out of range", hint: "between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        return value
    }

    func bool(_ node: YAMLValue?, at path: String) -> Bool? {
        guard let node else { return nil }
        if case .scalar(let scalar) = node {
            switch scalar.string {
            case "true", "True", "TRUE", "yes", "on": return true
            case "false", "False", "FALSE", "no", "off": return false
            default: break
            }
        }
        report(path, "must be true or false, not \(describe(node))", hint: "write true or false")
        return nil
    }

    /// A duration such as `2s`, `500ms`, `15m` or `1h` (`DurationText`).
    func duration(_ node: YAMLValue?, at path: String) -> Duration? {
        guard let text = string(node, at: path) else { return nil }
        guard let duration = DurationText.parse(text) else {
            report(path, "'\(text)' is not a duration", hint: DurationText.hint)
            return nil
        }
        return duration
    }

    func address(_ node: YAMLValue?, at path: String) -> IPv4Address? {
        guard let text = string(node, at: path) else { return nil }
        guard let address = IPv4Address(text) else {
            report(path, "'\(text)' is not an IPv4 address", hint: "write four decimal octets, e.g. 10.10.2.50")
            return nil
        }
        return address
    }

    func prefix(_ node: YAMLValue?, at path: String) -> IPv4Prefix? {
        guard let text = string(node, at: path) else { return nil }
        switch IPv4Prefix.parse(text) {
        case .success(let prefix):
            return prefix
        case .failure(.hostBitsSet(let suggestion)):
            report(path, "'\(text)' has host bits set", hint: "did you mean \(suggestion)?")
        case .failure(.malformed):
            report(path, "'\(text)' is not a CIDR block", hint: "write address/length, e.g. 10.10.0.0/16")
        }
        return nil
    }

    func endpoint(_ node: YAMLValue?, at path: String) -> IPv4Endpoint? {
        guard let text = string(node, at: path) else { return nil }
        guard let endpoint = IPv4Endpoint(text) else {
            report(path, "'\(text)' is not an address:port", hint: "write e.g. 127.0.0.1:5353")
            return nil
        }
        return endpoint
    }

    func port(_ node: YAMLValue?, at path: String) -> UInt16? {
        int(node, at: path, range: 1...65535).map { UInt16($0) }
    }

    func oneOf<T: RawRepresentable<String>>(_ node: YAMLValue?, at path: String, _ type: T.Type, choices: [T]) -> T? {
        guard let text = string(node, at: path) else { return nil }
        guard let value = T(rawValue: text) else {
            report(path, "'\(text)' is not allowed", hint: "one of: \(choices.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return value
    }

    private func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    private func describe(_ node: YAMLValue) -> String {
        switch node {
        case .scalar(let scalar): return scalar.string.isEmpty ? "an empty value" : "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The allowed key nearest to a misspelt one, if it is near enough to be a typo.
    private func closest(_ key: String, among allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, key.count / 4) else { return nil }
        return best.0
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}
