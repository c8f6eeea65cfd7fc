/// Where the control plane commits its state (`serve --store`, `control.store`): the embedded
/// SQLite file in the state directory (the default, one host), or a PostgreSQL database that
/// several hosts share.
public enum StoreLocation: Hashable, Sendable, CustomStringConvertible {
    /// `<state-dir>/state.sqlite`.
    case sqlite
    case postgres(PostgresLocation)

    /// Reads `sqlite` or a PostgreSQL URL,
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?host=/socket/dir&sslmode=disable]`.
    /// - Throws: a `ConfigIssue`-ready problem and hint.
    public static func parse(_ text: String) throws(StoreLocationError) -> StoreLocation {
        if text == "sqlite" { return .sqlite }
        return .postgres(try PostgresLocation.parse(text))
    }

    /// With any password left out: safe for logs and `systemctl status`.
    public var description: String {
        switch self {
        case .sqlite: "sqlite"
        case .postgres(let location): location.description
        }
    }
}

/// A PostgreSQL database, as a URL names it.
public struct PostgresLocation: Hashable, Sendable, CustomStringConvertible {
    /// The server's host name or address (TCP), or nil with `socketDirectory`.
    public var host: String?
    /// The directory of the server's Unix socket (`?host=/dir`): the socket is
    /// `<dir>/.s.PGSQL.<port>`, as libpq names it.
    public var socketDirectory: String?
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String

    /// The socket file when connecting over a Unix socket.
    public var socketPath: String? { socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } }

    /// The URL without the password.
    public var description: String {
        let place = host.map { "\($0):\(port)" } ?? ""
        let socket = socketDirectory.map { "?host=\($0)" } ?? ""
        return "postgres://\(user)@\(place)/\(database)\(socket)"
    }

    /// Longest URL accepted: a config value, not a place for data.
    public static let maxLength = 2048

    static func parse(_ text: String) throws(StoreLocationError) -> PostgresLocation {
        let hint = "write sqlite, or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (a Unix socket: postgres://USER@/DATABASE?host=/run/postgresql)"
        guard text.utf8.count <= maxLength else { throw StoreLocationError("is longer than \(maxLength) bytes", hint: hint) }
        var rest = Substring(text)
        guard let scheme = ["postgres://", "postgresql://"].first(where: { rest.hasPrefix($0) }) else {
            // Not echoed: the text may hold a password.
            throw StoreLocationError("is neither sqlite nor a postgres:// URL", hint: hint)
        }
        rest = rest.dropFirst(scheme.count)
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw StoreLocationError("names no database", hint: hint) }
        let authority = rest[..<slash]
        let databaseText = rest[rest.index(after: slash)...]
        var userInfo: Substring = ""
        var hostPort = authority
        if let at = authority.lastIndex(of: "@") {
            userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
        }
        var userText = userInfo
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            userText = userInfo[..<colon]
            password = try decoded(userInfo[userInfo.index(after: colon)...], "the password", hint: hint)
        }
        let user = try decoded(userText, "the user", hint: hint)
        guard !user.isEmpty else { throw StoreLocationError("names no user", hint: hint) }
        var host: String? = hostPort.isEmpty ? nil : String(hostPort)
        var port = 5432
        if let colon = hostPort.lastIndex(of: ":") {
            guard let number = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(number) else {
                throw StoreLocationError("has a port that is not a number from 1 to 65535", hint: hint)
            }
            port = number
            host = hostPort[..<colon].isEmpty ? nil : String(hostPort[..<colon])
        }
        if let name = host, !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }) {
            throw StoreLocationError("host '\(name.prefix(64))' is not a host name or IPv4 address", hint: hint)
        }
        var socketDirectory: String?
        for parameter in query.split(separator: "&") where !parameter.isEmpty {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count == 2 ? try decoded(parts[1], "parameter \(parts[0])", hint: hint) : ""
            switch parts[0] {
            case "host":
                guard value.hasPrefix("/") else {
                    throw StoreLocationError("host=\(value.prefix(64)) is not a socket directory", hint: "give the absolute directory of the server's Unix socket, e.g. host=/run/postgresql")
                }
                socketDirectory = value
            case "sslmode":
                guard value == "disable" else {
                    throw StoreLocationError(
                        "sslmode=\(value.prefix(32)) is not supported",
                        hint: "zonelink speaks to PostgreSQL without TLS: use sslmode=disable over a Unix socket, loopback or a private network")
                }
            default:
                throw StoreLocationError("unknown parameter '\(parts[0].prefix(32))'", hint: "allowed: host (a socket directory), sslmode=disable")
            }
        }
        if host != nil && socketDirectory != nil {
            throw StoreLocationError("names both a host and a socket directory", hint: "keep one: postgres://USER@HOST/DB or postgres://USER@/DB?host=/dir")
        }
        if host == nil && socketDirectory == nil {
            throw StoreLocationError("names no host", hint: hint)
        }
        let database = try decoded(databaseText, "the database", hint: hint)
        return PostgresLocation(
            host: host, socketDirectory: socketDirectory, port: port, user: user, password: password,
            database: database.isEmpty ? user : database)
    }

    /// `%XX` escapes decoded, as in any URL.
    private static func decoded(_ text: Substring, _ what: String, hint: String) throws(StoreLocationError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard iterator.count >= 2, let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) else {
                throw StoreLocationError("\(what) has a malformed %-escape", hint: hint)
            }
            bytes.append(value)
            iterator = iterator.dropFirst(2)
        }
        guard let string = String(validating: bytes, as: UTF8.self), !string.contains("\0") else {
            throw StoreLocationError("\(what) is not valid UTF-8", hint: hint)
        }
        return string
    }
}

/// Why a store location was refused, with what to write instead.
public struct StoreLocationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var problem: String
    public var hint: String
    init(_ problem: String, hint: String) {
        self.problem = problem
        self.hint = hint
    }
    public var description: String { "\(problem) (\(hint))" }
}
