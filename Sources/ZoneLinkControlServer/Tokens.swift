import Crypto
import Foundation
import Synchronization
import ZoneLinkControl
import ZoneLinkCore

/// Who a bearer token stands for. Tokens are never stored: only their SHA-256 digests, as
/// lower-case hex, each mapped to an account or the operator.
///
/// The tokens file (`<state-dir>/tokens` by default) has one digest a line, after whom it
/// stands for; `#` starts a comment:
///
///     # zonelink tokens: WHO SHA256-HEX-OF-THE-TOKEN
///     operator          9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
///     2222222222222222  60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
///
/// WHO is `operator` or a 16-digit account ID. An account may have several tokens (to rotate
/// them); a digest stands for one principal only.
public struct TokenTable: Sendable, Hashable {
    /// Lower-case hex SHA-256 digest of a token → its principal.
    public var principals: [String: Principal]

    public init(_ principals: [String: Principal] = [:]) {
        self.principals = Dictionary(principals.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { $1 })
    }

    /// The principal a presented token stands for, or nil for a token nobody has.
    public func principal(forToken token: String) -> Principal? {
        principals[Self.digest(of: token)]
    }

    /// The lower-case hex SHA-256 digest of a token: what the tokens file holds.
    public static func digest(of token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// A new random token: 32 bytes as 64 hex digits.
    public static func generateToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
    }

    /// Reads a tokens file. Every bad line is an issue with its line number as key path
    /// (`line 3`). Lines may end in LF or CRLF. An issue never repeats a field's text: a
    /// line written wrongly may hold a token in clear, and issues reach the log.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> TokenTable {
        var principals: [String: Principal] = [:]
        var issues: [ConfigIssue] = []
        // By bytes: Swift joins "\r\n" into one Character, so splitting a String on "\n"
        // would leave a CRLF file as one line.
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (n, bytes) in lines.enumerated() {
            let rawLine = Substring(bytes)
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard !fields.isEmpty else { continue }
            let where_ = "line \(n + 1)"
            guard fields.count == 2 else {
                issues.append(ConfigIssue(where_, "expected two fields, found \(fields.count)", hint: "write WHO SHA256-HEX, WHO being operator or a 16-digit account ID"))
                continue
            }
            let who = String(fields[0])
            let digest = fields[1].lowercased()
            let principal: Principal
            if who == "operator" {
                principal = .operator
            } else if who.utf8.count == 16, who.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                principal = .account(who)
            } else {
                issues.append(ConfigIssue(where_, "the first field (\(who.count) characters) is neither operator nor an account ID", hint: "write operator or the 16-digit account ID, then the digest"))
                continue
            }
            guard digest.utf8.count == 64, digest.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f")) }) else {
                issues.append(ConfigIssue(where_, "the second field (\(fields[1].count) characters) is not a SHA-256 digest", hint: "write the 64 hex digits of sha256sum of the token (printf %s TOKEN | sha256sum), not the token"))
                continue
            }
            if let earlier = principals[digest], earlier != principal {
                issues.append(ConfigIssue(where_, "this digest already stands for \(earlier)", hint: "give each principal tokens of its own"))
                continue
            }
            principals[digest] = principal
        }
        guard issues.isEmpty else { throw ConfigError(file: file, issues: issues) }
        return TokenTable(principals)
    }

    /// Reads the tokens file at `path`; a missing file is an empty table (every request 401),
    /// which `exists` tells the caller so that it can say so.
    /// - Throws: `TokensFileError` when others may write the file (as ssh refuses such keys)
    ///   or it cannot be read; `ConfigError` for bad lines.
    public static func load(file path: String) throws -> TokenTable {
        guard try TokensFile.check(path) else { return TokenTable() }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TokensFileError.unreadable(path: path, reason: error.localizedDescription)
        }
        return try parse(text, file: path)
    }
}

/// Why a tokens file was not read.
public enum TokensFileError: Error, Equatable, CustomStringConvertible {
    /// Group or others may write the file: anyone who can add a line can
    /// make themselves operator, so the file is refused whatever it says.
    case writableByOthers(path: String, mode: UInt16)
    /// Another user than root or ZoneLink's own owns the file.
    case foreignOwner(path: String, uid: UInt32)
    case unreadable(path: String, reason: String)
    /// Larger than `TokensFile.maxSize`: no real tokens file is, and it is read whole.
    case tooLarge(path: String, bytes: Int64)

    public var description: String {
        switch self {
        case .writableByOthers(let path, let mode):
            "\(path): group or others may write it (mode \(String(mode, radix: 8))); refused, as ssh refuses such keys (chmod go-w \(path))"
        case .foreignOwner(let path, let uid):
            "\(path): owned by uid \(uid), neither root nor the user ZoneLink runs as; refused (chown it)"
        case .unreadable(let path, let reason):
            "\(path): cannot be read: \(reason)"
        case .tooLarge(let path, let bytes):
            "\(path): \(bytes) bytes, more than the \(TokensFile.maxSize) a tokens file may have; refused"
        }
    }
}

/// The checks a tokens file passes before it is read.
enum TokensFile {
    /// The largest tokens file read: about 10,000 lines of `WHO DIGEST`.
    static let maxSize: Int64 = 1 << 20

    /// False when the file does not exist; throws when it exists but may not be trusted.
    static func check(_ path: String) throws(TokensFileError) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return false }
            throw .unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard info.st_uid == 0 || info.st_uid == geteuid() else { throw .foreignOwner(path: path, uid: info.st_uid) }
        let mode = UInt16(info.st_mode & 0o7777)
        guard mode & 0o022 == 0 else { throw .writableByOthers(path: path, mode: mode) }
        guard Int64(info.st_size) <= maxSize else { throw .tooLarge(path: path, bytes: Int64(info.st_size)) }
        return true
    }
}

/// The tokens in force; `replace` swaps them (on SIGHUP, say) while requests are answered.
public final class TokenStore: Sendable {
    private let table: Mutex<TokenTable>

    public init(_ table: TokenTable = TokenTable()) {
        self.table = Mutex(table)
    }

    public convenience init(_ principals: [String: Principal]) {
        self.init(TokenTable(principals))
    }

    public func replace(_ table: TokenTable) {
        self.table.withLock { $0 = table }
    }

    public var current: TokenTable { table.withLock { $0 } }

    /// The principal of an `Authorization` header value (`Bearer TOKEN`, the scheme in any
    /// case), or nil when it is missing, of another scheme, or a token nobody has.
    public func principal(authorization: String?) -> Principal? {
        guard let authorization else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { return nil }
        return current.principal(forToken: token)
    }
}
