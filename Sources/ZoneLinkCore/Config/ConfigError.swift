/// One thing wrong with a config, where it is, and what to do about it.
public struct ConfigIssue: Hashable, Sendable, CustomStringConvertible {
    /// Where in the file: `vpcs[0].vswitches[1].cidr`; empty for the whole document.
    public var keyPath: String
    public var problem: String
    public var hint: String

    public init(_ keyPath: String, _ problem: String, hint: String) {
        self.keyPath = keyPath
        self.problem = problem
        self.hint = hint
    }

    public var description: String {
        keyPath.isEmpty ? "\(problem) (\(hint))" : "\(keyPath): \(problem) (\(hint))"
    }
}

/// Every issue found in one config file. Nothing is started while a config has issues.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var issues: [ConfigIssue]

    public init(file: String, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }

    /// One line per issue: `FILE: key.path: problem (hint)`.
    public var lines: [String] { issues.map { "\(file): \($0)" } }

    public var description: String { lines.joined(separator: "\n") }
}
