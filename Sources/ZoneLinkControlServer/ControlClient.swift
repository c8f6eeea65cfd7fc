import Foundation
#if canImport(Glibc)
import Glibc
import ZoneLinkCore
import ZoneLinkNetwork
#endif

/// A small blocking HTTP/1.1 client for the control API, for the command line: one request
/// per connection (`Connection: close`), over the control socket or loopback TCP.
public struct ControlClient: Sendable {
    public enum Address: Sendable, Hashable, CustomStringConvertible {
        case unix(path: String)
        /// An IPv4 address (or `localhost`) and port.
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unix(let path): path
            case .tcp(let host, let port): "http://\(host):\(port)"
            }
        }
    }

    public let address: Address
    /// Sent as `Authorization: Bearer TOKEN`.
    public let token: String?

    public init(address: Address, token: String?) {
        self.address = address
        self.token = token
    }

    /// `--server` as a user writes it: a socket path (`/run/zonelink/control.sock`,
    /// `unix:PATH`), or `http://HOST:PORT` / `HOST:PORT`.
    public init(server: String, token: String?) throws {
        self.token = token
        if server.hasPrefix("unix:") {
            address = .unix(path: String(server.dropFirst(5)))
            return
        }
        var rest = Substring(server)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        if server.hasPrefix("http://") || (!server.contains("/") && rest.contains(":")) {
            let parts = rest.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw ControlClientError("'\(server)' is not a server: give the control socket's path or http://HOST:PORT")
            }
            address = .tcp(host: String(parts[0]), port: port)
        } else {
            address = .unix(path: server)
        }
    }

    /// A response: status, headers (names in lower case), body.
    public struct Response: Sendable, CustomStringConvertible {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        public var text: String { String(decoding: body, as: UTF8.self) }
        public var description: String { "\(status) \(text)" }
        public var isSuccess: Bool { (200..<300).contains(status) }

        /// The error body of a 4xx/5xx answer.
        public var error: ErrorBody? { try? JSONDecoder().decode(ErrorBody.self, from: body) }

        public func decode<T: Decodable>(_ type: T.Type) throws -> T {
            do {
                return try JSONDecoder().decode(type, from: body)
            } catch {
                throw ControlClientError("the server's answer is not a \(type): \(error): \(text.prefix(200))")
            }
        }
    }

    /// Sends `value` as the JSON body.
    public func send(_ method: String, _ path: String, json value: some Encodable) throws -> Response {
        try send(method, path, body: try JSONEncoder().encode(value), headers: [("Content-Type", "application/json")])
    }

    /// Sends one request and reads the whole response.
    public func send(_ method: String, _ path: String, body: Data? = nil, headers: [(String, String)] = []) throws -> Response {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: zonelink\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if body != nil || method == "POST" || method == "PATCH" || method == "PUT" { head += "Content-Length: \(body?.count ?? 0)\r\n" }
        let request = Array((head + "\r\n").utf8) + Array(body ?? Data())
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw ControlClientError("cannot send the request to \(address): \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            response.append(contentsOf: chunk[0..<n])
        }
        return try Self.parse(response)
    }

    static func parse(_ response: Data) throws -> Response {
        guard let split = response.range(of: Data("\r\n\r\n".utf8)) else {
            throw ControlClientError("the server's answer is not HTTP")
        }
        let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw ControlClientError("bad status line '\(head[0])'") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(response[split.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = try dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ data: Data) throws -> Data {
        var result = Data()
        var rest = data[...]
        while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
            let sizeText = String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw ControlClientError("bad chunk size") }
            if size == 0 { break }
            let start = lineEnd.upperBound
            guard rest.endIndex >= start + size else { throw ControlClientError("truncated chunk") }
            result.append(rest[start..<(start + size)])
            rest = rest[min(start + size + 2, rest.endIndex)...]
        }
        return result
    }

    private func connect() throws -> Int32 {
        switch address {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ControlClientError("cannot create a socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                throw ControlClientError("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard result == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw ControlClientError("cannot reach \(path): \(reason) (is `zonelink serve` running with this --state-dir?)")
            }
            return fd
        case .tcp(let host, let port):
            guard let ip = IPv4Address(host == "localhost" ? "127.0.0.1" : host) else {
                throw ControlClientError("'\(host)' is not an IPv4 address")
            }
            var address = IPv4Endpoint(address: ip, port: UInt16(port)).sockaddr
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ControlClientError("cannot create a socket: \(String(cString: strerror(errno)))") }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard result == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw ControlClientError("cannot reach \(host):\(port): \(reason)")
            }
            return fd
        }
    }
}

public struct ControlClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
