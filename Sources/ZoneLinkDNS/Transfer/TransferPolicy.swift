import Foundation
import ZoneLinkCore

/// Who may transfer which view: the secondaries' keys with their secrets read, the view each
/// key opens and the sources each key may be used from. Built once per catalog
/// (`Catalog.loadTransferPolicy`), read on every transfer request.
public struct TransferPolicy: Sendable {
    public struct Grant: Sendable, Equatable {
        public var key: TSIGKey
        public var view: ViewKey
        /// The union of `allowFrom` of the secondaries that use this key.
        public var allowFrom: [IPv4Prefix]
        /// The secondaries' names, for logs and metrics.
        public var secondaries: [String]
        /// Where NOTIFY goes when the view changes: each secondary's `notify` addresses.
        public var notify: [NotifyTarget] = []
    }

    /// One address a NOTIFY goes to, and the secondary it belongs to.
    public struct NotifyTarget: Sendable, Hashable {
        public var secondary: String
        public var address: IPv4Endpoint
    }

    /// By key name: the key selects the view.
    public let grants: [DNSName: Grant]

    public init(grants: [DNSName: Grant]) { self.grants = grants }

    public static let none = TransferPolicy(grants: [:])

    public var isEmpty: Bool { grants.isEmpty }

    /// Every view some secondary carries.
    public var views: Set<ViewKey> { Set(grants.values.map(\.view)) }

    /// `secondaries` with `secrets` (one per secondary, read by the caller), grouped by key.
    init(secondaries: [DNSSecondary], secrets: [SecretBytes]) {
        var grants: [DNSName: Grant] = [:]
        for (secondary, secret) in zip(secondaries, secrets) {
            let name = DNSName(secondary.key.name)!
            let key = TSIGKey(name: name, algorithm: TSIGAlgorithm(secondary.key.algorithm), secret: secret)
            let view = ViewKey(vpc: secondary.vpc, zone: secondary.zone)
            let notify = secondary.notify.map { NotifyTarget(secondary: secondary.name, address: $0) }
            if var grant = grants[name] {
                grant.allowFrom += secondary.allowFrom
                grant.secondaries.append(secondary.name)
                grant.notify += notify
                grants[name] = grant
            } else {
                grants[name] = Grant(key: key, view: view, allowFrom: secondary.allowFrom, secondaries: [secondary.name], notify: notify)
            }
        }
        self.grants = grants
    }
}

extension Catalog {
    /// The most a secret file may hold: a base64 secret is under 100 bytes; 4 KiB is any
    /// key file's worth, and reading more would be reading the wrong file.
    public static let maxSecretFileSize = 4096

    /// The transfer policy of `dns.secondaries`, with every `secretFile` read (relative paths
    /// from the working directory). Throws every unreadable or malformed secret with its key
    /// path; the secret itself never appears in an error.
    public func loadTransferPolicy(file: String) throws(ConfigError) -> TransferPolicy {
        var secrets: [SecretBytes] = []
        var issues: [ConfigIssue] = []
        for (i, secondary) in dns.secondaries.enumerated() {
            switch secondary.key.secret {
            case .inline(let bytes):
                secrets.append(bytes)
            case .file(let path):
                let keyPath = "dns.secondaries[\(i)].key.secretFile"
                switch Self.readSecret(path) {
                case .success(let bytes): secrets.append(bytes)
                case .failure(let issue): issues.append(ConfigIssue(keyPath, issue.problem, hint: issue.hint))
                }
            }
        }
        guard issues.isEmpty else { throw ConfigError(file: file, issues: issues) }
        return TransferPolicy(secondaries: dns.secondaries, secrets: secrets)
    }

    struct SecretProblem: Error {
        var problem: String
        var hint: String
    }

    /// A secret file: one line of base64, at most `maxSecretFileSize` bytes. Its content is
    /// never quoted back.
    static func readSecret(_ path: String) -> Result<SecretBytes, SecretProblem> {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(SecretProblem(problem: "\(path) cannot be read", hint: "check the path and that ZoneLink's user may read it"))
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxSecretFileSize + 1) ?? Data()
        } catch {
            return .failure(SecretProblem(problem: "\(path) cannot be read: \(error.localizedDescription)", hint: "check the file"))
        }
        guard data.count <= maxSecretFileSize else {
            return .failure(SecretProblem(problem: "\(path) is larger than \(maxSecretFileSize) bytes", hint: "the file holds the base64 secret on one line"))
        }
        guard let text = String(data: data, encoding: .utf8), let secret = SecretBytes(base64: text) else {
            return .failure(SecretProblem(problem: "\(path) does not hold a base64 secret (content not shown)",
                                          hint: "write the secret tsig-keygen or `keymgr -t NAME` printed, alone on one line"))
        }
        return .success(secret)
    }
}
