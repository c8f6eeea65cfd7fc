import Foundation
import Glibc
import ZoneLinkAPI

/// A small blocking HTTP/1.1 client that sends exactly the bytes a test asks for (any method,
/// path, header or body, however wrong), one request per connection, and reads the whole
/// answer: what the control API is tested with, where the generated client would refuse to
/// send a malformed request.
struct RawHTTPClient: Sendable {
    enum Address: Sendable {
        case unix(path: String)
        case tcp(port: Int)
    }

    let address: Address

    /// A response: status, headers (names in lower case), body.
    struct Response: Sendable, CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: Data

        var text: String { String(decoding: body, as: UTF8.self) }
        var description: String { "\(status) \(text)" }
        var isSuccess: Bool { (200..<300).contains(status) }

        /// The error body of a 4xx/5xx answer.
        var error: Components.Schemas._Error? { try? JSONDecoder().decode(Components.Schemas._Error.self, from: body) }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            do {
                return try JSONDecoder().decode(type, from: body)
            } catch {
                throw RawHTTPError("the server's answer is not a \(type): \(error): \(text.prefix(200))")
            }
        }
    }

    /// Sends one request and reads the whole response.
    func send(_ method: String, _ path: String, body: Data? = nil, headers: [(String, String)] = []) throws -> Response {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: zonelink\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if body != nil || method == "POST" || method == "PATCH" || method == "PUT" { head += "Content-Length: \(body?.count ?? 0)\r\n" }
        let request = Array((head + "\r\n").utf8) + Array(body ?? Data())
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw RawHTTPError("cannot send the request to \(address): \(String(cString: strerror(errno)))") }
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
            throw RawHTTPError("the server's answer is not HTTP")
        }
        let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw RawHTTPError("bad status line '\(head[0])'") }
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
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw RawHTTPError("bad chunk size") }
            if size == 0 { break }
            let start = lineEnd.upperBound
            guard rest.endIndex >= start + size else { throw RawHTTPError("truncated chunk") }
            result.append(rest[start..<(start + size)])
            rest = rest[min(start + size + 2, rest.endIndex)...]
        }
        return result
    }

    private func connect() throws -> Int32 {
        switch address {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw RawHTTPError("cannot create a socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                throw RawHTTPError("socket path too long: \(path)")
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
                throw RawHTTPError("cannot reach \(path): \(reason)")
            }
            return fd
        case .tcp(let port):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw RawHTTPError("cannot create a socket: \(String(cString: strerror(errno)))") }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard result == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw RawHTTPError("cannot reach 127.0.0.1:\(port): \(reason)")
            }
            return fd
        }
    }
}

struct RawHTTPError: Error, CustomStringConvertible, Sendable {
    var description: String
    init(_ description: String) { self.description = description }
}
