/// Finds a key that appears twice in one JSON object.
///
/// RFC 8259 leaves duplicate names undefined and Foundation's decoder silently keeps one of
/// them, so `{"id": "ep-a", "id": "ep-b"}` would mean whatever a parser chose. The API refuses
/// such a body (400) instead. Keys are compared after their escapes are decoded (`"a"` and
/// `"\u0061"` are the same name). Malformed JSON is left to the decoder: this returns nil.
/// Depth is bounded, so a hostile body of nested brackets costs a bounded stack.
enum JSONDuplicateKeys {
    /// Nesting deeper than this is not looked into (the API's bodies are two levels deep).
    static let maxDepth = 64

    /// The key path of the first duplicated key (`zones[1].zone`), or nil when there is none.
    static func first(in bytes: [UInt8]) -> String? {
        var scanner = Scanner(bytes: bytes)
        return scanner.value(path: "", depth: 0)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var at = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        /// Skips one value; returns the path of a duplicate found inside it.
        mutating func value(path: String, depth: Int) -> String? {
            skipSpace()
            guard at < bytes.count, depth < JSONDuplicateKeys.maxDepth else { return nil }
            switch bytes[at] {
            case UInt8(ascii: "{"): return object(path: path, depth: depth)
            case UInt8(ascii: "["): return array(path: path, depth: depth)
            case UInt8(ascii: "\""): _ = string(); return nil
            default:
                while at < bytes.count, !Self.ends(bytes[at]) { at += 1 }
                return nil
            }
        }

        private mutating func object(path: String, depth: Int) -> String? {
            at += 1
            var seen = Set<[UInt8]>()
            while true {
                skipSpace()
                guard at < bytes.count else { return nil }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return nil }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                guard bytes[at] == UInt8(ascii: "\""), let key = string() else { return nil }
                let keyText = String(decoding: key, as: UTF8.self)
                let keyPath = path.isEmpty ? keyText : "\(path).\(keyText)"
                guard seen.insert(key).inserted else { return keyPath }
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { return nil }
                at += 1
                if let duplicate = value(path: keyPath, depth: depth + 1) { return duplicate }
            }
        }

        private mutating func array(path: String, depth: Int) -> String? {
            at += 1
            var index = 0
            while true {
                skipSpace()
                guard at < bytes.count else { return nil }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return nil }
                if bytes[at] == UInt8(ascii: ",") { at += 1; index += 1; continue }
                let before = at
                if let duplicate = value(path: "\(path)[\(index)]", depth: depth + 1) { return duplicate }
                if at == before { return nil }  // not a value: malformed, the decoder says why
            }
        }

        /// A string's decoded bytes (the scanner at its opening quote), or nil when malformed.
        private mutating func string() -> [UInt8]? {
            at += 1
            var decoded: [UInt8] = []
            while at < bytes.count {
                let byte = bytes[at]
                at += 1
                if byte == UInt8(ascii: "\"") { return decoded }
                guard byte == UInt8(ascii: "\\") else { decoded.append(byte); continue }
                guard at < bytes.count else { return nil }
                let escape = bytes[at]
                at += 1
                switch escape {
                case UInt8(ascii: "u"):
                    guard let unit = hex4() else { return nil }
                    var scalar = UInt32(unit)
                    // A high surrogate followed by an escaped low one is one character.
                    if (0xD800..<0xDC00).contains(unit), at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") {
                        at += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    }
                    decoded.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8))
                case UInt8(ascii: "b"): decoded.append(8)
                case UInt8(ascii: "f"): decoded.append(12)
                case UInt8(ascii: "n"): decoded.append(10)
                case UInt8(ascii: "r"): decoded.append(13)
                case UInt8(ascii: "t"): decoded.append(9)
                default: decoded.append(escape)  // \" \\ \/
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt16? {
            guard at + 4 <= bytes.count, let value = UInt16(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16) else { return nil }
            at += 4
            return value
        }

        private mutating func skipSpace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x09 || bytes[at] == 0x0A || bytes[at] == 0x0D { at += 1 }
        }

        private static func ends(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]")
                || byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
        }
    }
}
