/// The namespace threads of one process, opened on first use and kept until shutdown, so every
/// part of ZoneLink (DNS, gateway) makes its sockets for a VPC on the same thread.
public actor NamespaceRegistry {
    private var open: [String: NetworkNamespace] = [:]

    public init() {}

    public func namespace(_ name: String?) async throws(NamespaceError) -> NetworkNamespace {
        guard let name else { return .host }
        if let namespace = open[name] { return namespace }
        let namespace = try await NetworkNamespace.named(name)
        open[name] = namespace
        return namespace
    }

    public func shutdown() async {
        for namespace in open.values { await namespace.shutdown() }
        open = [:]
    }
}
