import Foundation

/// A DNS secondary that carries one view by zone transfer (`dns.secondaries[]`, issue 8).
///
/// A view is what one client population sees: the generated zone and each `privateDomain`
/// zone as a client of `vpc` sees them, and, when `zone` is given, as a client in that
/// availability zone (zone affinity applied to the current health). The TSIG key that signs
/// a request selects the view, as BIND's views matched by key do, so each key opens one view.
public struct DNSSecondary: Hashable, Sendable {
    /// The operator's name for this secondary, for logs and metrics.
    public var name: String
    public var key: TransferKey
    public var vpc: String
    /// The availability zone whose clients the view answers as (nil: every ENI, no affinity).
    public var zone: String?
    /// Where NOTIFY goes when the view changes (RFC 1996).
    public var notify: [IPv4Endpoint]
    /// Sources a transfer may come from; empty: none (a transfer must be allowed explicitly).
    public var allowFrom: [IPv4Prefix]

    public init(
        name: String, key: TransferKey, vpc: String, zone: String? = nil, notify: [IPv4Endpoint] = [],
        allowFrom: [IPv4Prefix] = []
    ) {
        self.name = name
        self.key = key
        self.vpc = vpc
        self.zone = zone
        self.notify = notify
        self.allowFrom = allowFrom
    }
}

/// A TSIG key (RFC 8945) as the config names it: its name, algorithm and where its secret is.
public struct TransferKey: Hashable, Sendable {
    /// The key's domain name as both sides spell it (`vpc1-a.key`), lower case, no trailing dot.
    public var name: String
    public var algorithm: TSIGAlgorithmName
    public var secret: TransferKeySecret

    public init(name: String, algorithm: TSIGAlgorithmName, secret: TransferKeySecret) {
        self.name = name
        self.algorithm = algorithm
        self.secret = secret
    }
}

/// The HMAC algorithms ZoneLink signs and verifies with, by their TSIG names (RFC 8945 section 6).
public enum TSIGAlgorithmName: String, Hashable, Sendable, CaseIterable {
    case hmacSHA256 = "hmac-sha256"
    case hmacSHA384 = "hmac-sha384"
    case hmacSHA512 = "hmac-sha512"
}

/// Where a key's secret is: inline (`secret:`, already decoded) or in a file (`secretFile:`),
/// read when the data plane is planned, so that a rotated file takes effect on reload.
///
/// Its description never shows the secret: configs, catalogs and errors are printed and logged.
public enum TransferKeySecret: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    case inline(SecretBytes)
    case file(String)

    public var description: String {
        switch self {
        case .inline: "secret (inline, not shown)"
        case .file(let path): "secretFile \(path)"
        }
    }

    public var debugDescription: String { description }
}

/// Secret key material. Compared and hashed like bytes, printed as nothing.
public struct SecretBytes: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Base64 as `tsig-keygen` and `keymgr` print it; nil when it is not base64 or is empty.
    public init?(base64 text: some StringProtocol) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, let data = Data(base64Encoded: trimmed), !data.isEmpty else { return nil }
        self.bytes = Array(data)
    }

    public var description: String { "(\(bytes.count) secret bytes, not shown)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
