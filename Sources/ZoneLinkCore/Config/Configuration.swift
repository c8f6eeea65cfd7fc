import Foundation
import Yams

/// A config file as written: every field typed, every reference still an ID or name.
///
/// `Catalog(configuration:)` validates it; nothing runs on a `Configuration` directly.
public struct Configuration: Hashable, Sendable {
    public var region: String
    public var domain: String
    public var dns: DNSSettings
    public var gateway: GatewaySettings
    public var control: ControlSettings
    public var descriptors: DescriptorSettings
    public var accounts: [Account]
    public var vpcs: [VPC]
    public var loadBalancers: [LoadBalancer]
    public var endpointServices: [EndpointService]
    public var endpoints: [Endpoint]
    /// Zones shifted away by the operator. Never read from the file: the control plane adds
    /// the shifts it holds (`ControlState.configuration(base:)`).
    public var zonalShifts: [ZonalShift]
    /// What this host carries when several share the catalog; nil: everything.
    public var host: HostPlacement?

    public init(
        region: String, domain: String, dns: DNSSettings = DNSSettings(), gateway: GatewaySettings = GatewaySettings(),
        control: ControlSettings = ControlSettings(), descriptors: DescriptorSettings = DescriptorSettings(),
        accounts: [Account] = [],
        vpcs: [VPC] = [], loadBalancers: [LoadBalancer] = [], endpointServices: [EndpointService] = [],
        endpoints: [Endpoint] = [], zonalShifts: [ZonalShift] = [], host: HostPlacement? = nil
    ) {
        self.region = region
        self.domain = domain
        self.dns = dns
        self.gateway = gateway
        self.control = control
        self.descriptors = descriptors
        self.accounts = accounts
        self.vpcs = vpcs
        self.loadBalancers = loadBalancers
        self.endpointServices = endpointServices
        self.endpoints = endpoints
        self.zonalShifts = zonalShifts
        self.host = host
    }
}

extension Configuration {
    /// Parses YAML text. Throws a `ConfigError` naming `file` with every problem found.
    ///
    /// The text is read from libyaml's events (`YAMLEventReader`), each endpoint parsed as soon
    /// as it is read, not through a node tree of the whole document: a 100,000-endpoint file is
    /// tens of megabytes. Whatever that reader leaves to Yams (invalid YAML, duplicate keys, an
    /// undefined alias) is read again through Yams' node tree, so the user gets Yams' message
    /// (with its line and column) as before; both readers feed the same `ConfigParser`.
    public static func parse(yaml text: String, file: String) throws(ConfigError) -> Configuration {
        let read: (configuration: Configuration?, issues: [ConfigIssue])
        do {
            read = try readEvents(text)
        } catch {
            switch error {
            case .refused(let issue): throw ConfigError(file: file, issues: [issue])
            case .unusual: return try parseThroughNodeTree(yaml: text, file: file)
            }
        }
        guard read.issues.isEmpty, let configuration = read.configuration else {
            throw ConfigError(file: file, issues: read.issues)
        }
        return configuration
    }

    /// The streaming read: a `Configuration` (nil when a required part is missing) and every
    /// issue, in the order the node-tree reader reports them.
    ///
    /// A top-level `endpoints` list of one flow mapping per line is read without libyaml
    /// (`EndpointLines`), the rest of the text with it; when the list is written otherwise, or
    /// libyaml reads the rest differently than the split assumes, the whole text is read by
    /// libyaml.
    private static func readEvents(_ text: String) throws(YAMLReadFailure) -> (configuration: Configuration?, issues: [ConfigIssue]) {
        var text = text
        return try text.withUTF8 { bytes -> Result<(configuration: Configuration?, issues: [ConfigIssue]), YAMLReadFailure> in
            if let lines = EndpointLines.locate(in: bytes), let read = readSplit(bytes, lines) { return .success(read) }
            return Result { () throws(YAMLReadFailure) in try readWhole(bytes) }
        }.get()
    }

    /// Every issue of the endpoints read so far, and their parser (each element goes to it as
    /// soon as it is read).
    private final class EndpointCollector {
        // Endpoints come last in `ConfigParser.parse`, so their issues go after all the others.
        let reader = YAMLReader()
        var endpoints: [Endpoint] = []
        var index = 0

        func add(_ endpoint: Endpoint) {
            endpoints.append(endpoint)
            index += 1
        }

        func add(_ node: YAMLValue) {
            let parser = ConfigParser(reader: reader)
            if let endpoint = parser.plainEndpoint(node) ?? parser.parseEndpoint(node, "endpoints[\(index)]") {
                endpoints.append(endpoint)
            }
            index += 1
        }
    }

    private static func readWhole(_ bytes: UnsafeBufferPointer<UInt8>) throws(YAMLReadFailure) -> (configuration: Configuration?, issues: [ConfigIssue]) {
        let collector = EndpointCollector()
        let document: (root: YAMLValue?, streamed: Bool, streamedAt: Int?)
        if bytes.isEmpty {
            document = (nil, false, nil)
        } else {
            document = try YAMLEventReader(bytes: bytes).readDocument(endpoint: collector.add)
        }
        let reader = YAMLReader()
        let configuration = ConfigParser(reader: reader).parse(document.root, endpoints: document.streamed ? collector.endpoints : nil)
        return (configuration, reader.issues + collector.reader.issues)
    }

    /// The text read in two parts (`EndpointLines`); nil when that does not hold, and the
    /// whole text must be read by libyaml. (Internal for the tests, which check when it holds.)
    static func readSplit(
        _ bytes: UnsafeBufferPointer<UInt8>, _ lines: EndpointLines
    ) -> (configuration: Configuration?, issues: [ConfigIssue])? {
        let (rest, placeholder) = lines.reducedText(of: bytes)
        var listed = false
        let document = rest.withUnsafeBufferPointer { rest in
            try? YAMLEventReader(bytes: rest).readDocument { _ in listed = true }
        }
        // The `[]` put in must be what libyaml read as the value of the top-level key.
        guard let document, document.streamed, !listed, document.streamedAt == placeholder else { return nil }
        let collector = EndpointCollector()
        guard lines.readElements(of: bytes, plain: collector.add, element: collector.add) else { return nil }
        let reader = YAMLReader()
        let configuration = ConfigParser(reader: reader).parse(document.root, endpoints: collector.endpoints)
        return (configuration, reader.issues + collector.reader.issues)
    }

    /// Parses YAML text through Yams' node tree: the reader for what the event reader leaves to
    /// Yams, and the reference the event reader is tested against.
    static func parseThroughNodeTree(yaml text: String, file: String) throws(ConfigError) -> Configuration {
        let root: YAMLValue?
        do {
            root = try compose(text).map(YAMLValue.init)
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue("", "is not valid YAML: \(error)", hint: "fix the syntax at the position shown")])
        }
        let reader = YAMLReader()
        let configuration = ConfigParser(reader: reader).parse(root)
        guard reader.issues.isEmpty, let configuration else {
            throw ConfigError(file: file, issues: reader.issues)
        }
        return configuration
    }

    /// The node tree of a YAML text, every scalar left a plain string (`Resolver.basic`): the
    /// parser reads each value as the key it belongs to says (`YAMLReader`), so YAML's own
    /// implicit typing, a set of regular expressions run on every scalar and most of the cost
    /// of a large file, would buy nothing.
    private static func compose(_ text: String) throws -> Node? {
        try Yams.compose(yaml: text, .basic)
    }

    /// The key paths the parser accepts in the mappings `text` reaches (`dns.listen[].vpc`),
    /// whatever it says about their values: what the documentation of the schema must list.
    static func acceptedKeys(readingYAML text: String) -> Set<String> {
        let reader = YAMLReader(collectsKeys: true)
        _ = ConfigParser(reader: reader).parse((try? compose(text))?.map(YAMLValue.init))
        return reader.acceptedKeys
    }

    /// Reads and parses a file.
    public static func load(file: String) throws(ConfigError) -> Configuration {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue("", "cannot be read: \(error.localizedDescription)", hint: "check the path and its permissions")])
        }
        return try parse(yaml: text, file: file)
    }
}

/// Turns YAML nodes into a `Configuration`, one function per object kind.
private struct ConfigParser {
    let reader: YAMLReader

    /// `endpoints`: the endpoints already parsed as the event reader streamed them (the root
    /// then holds an empty list in their place); nil: parse the root's list.
    func parse(_ root: YAMLValue?, endpoints streamed: [Endpoint]? = nil) -> Configuration? {
        guard let top = reader.mapping(
            root, at: "",
            allowed: ["region", "domain", "host", "dns", "gateway", "control", "descriptors", "accounts", "vpcs", "loadBalancers",
                      "endpointServices", "endpoints"],
            required: ["region", "domain"]
        ) else { return nil }
        let region = reader.string(top["region"], at: "region")
        let domain = reader.string(top["domain"], at: "domain")
        let dns = top["dns"].map { parseDNS($0) } ?? DNSSettings()
        let gateway = top["gateway"].map { parseGateway($0) } ?? GatewaySettings()
        let control = top["control"].map { parseControl($0) } ?? ControlSettings()
        let descriptors = top["descriptors"].map { parseDescriptors($0) } ?? DescriptorSettings()
        let host = top["host"].flatMap { parseHost($0) }
        let accounts = reader.sequence(top["accounts"], at: "accounts").compactMap(parseAccount)
        let vpcs = reader.sequence(top["vpcs"], at: "vpcs").compactMap(parseVPC)
        let loadBalancers = reader.sequence(top["loadBalancers"], at: "loadBalancers").compactMap(parseLoadBalancer)
        let services = reader.sequence(top["endpointServices"], at: "endpointServices").compactMap(parseService)
        let endpoints = streamed ?? reader.sequence(top["endpoints"], at: "endpoints").compactMap(parseEndpoint)
        guard let region, let domain else { return nil }
        return Configuration(
            region: region, domain: domain, dns: dns ?? DNSSettings(), gateway: gateway ?? GatewaySettings(),
            control: control ?? ControlSettings(), descriptors: descriptors ?? DescriptorSettings(),
            accounts: accounts, vpcs: vpcs,
            loadBalancers: loadBalancers, endpointServices: services, endpoints: endpoints, host: host
        )
    }

    func parseHost(_ node: YAMLValue) -> HostPlacement? {
        guard let map = reader.mapping(node, at: "host", allowed: ["id", "zones", "vpcs"], required: ["id"]),
              let id = reader.string(map["id"], at: "host.id")
        else { return nil }
        let zones = map["zones"].map { _ in reader.sequence(map["zones"], at: "host.zones").compactMap { reader.string($0.node, at: $0.path) } }
        let vpcs = map["vpcs"].map { _ in reader.sequence(map["vpcs"], at: "host.vpcs").compactMap { reader.string($0.node, at: $0.path) } }
        return HostPlacement(id: id, zones: zones, vpcs: vpcs)
    }

    func parseDNS(_ node: YAMLValue) -> DNSSettings? {
        guard let map = reader.mapping(
            node, at: "dns", allowed: ["ttl", "listen", "upstreams", "zoneFiles", "tcpIdleTimeout", "trustedForwarders",
                               "forwardTimeout", "cacheMaxTTL", "cacheSize", "privateDomainSuffixes",
                               "limits", "rateLimit", "secondaries"]
        ) else { return nil }
        var settings = DNSSettings()
        if let ttl = reader.int(map["ttl"], at: "dns.ttl", range: 0...2_147_483_647) { settings.ttl = UInt32(ttl) }
        settings.listen = reader.sequence(map["listen"], at: "dns.listen").compactMap { node, path in
            guard let entry = reader.mapping(node, at: path, allowed: ["address", "vpc", "zone", "rateLimit"], required: ["address"]),
                  let address = reader.endpoint(entry["address"], at: "\(path).address")
            else { return nil }
            return DNSListener(
                address: address, vpc: reader.string(entry["vpc"], at: "\(path).vpc"),
                zone: reader.string(entry["zone"], at: "\(path).zone"),
                rateLimit: reader.bool(entry["rateLimit"], at: "\(path).rateLimit") ?? true)
        }
        settings.upstreams = reader.sequence(map["upstreams"], at: "dns.upstreams").compactMap {
            reader.endpoint($0.node, at: $0.path)
        }
        settings.zoneFiles = reader.sequence(map["zoneFiles"], at: "dns.zoneFiles").compactMap {
            reader.string($0.node, at: $0.path)
        }
        if let timeout = reader.duration(map["tcpIdleTimeout"], at: "dns.tcpIdleTimeout") { settings.tcpIdleTimeout = timeout }
        if let timeout = reader.duration(map["forwardTimeout"], at: "dns.forwardTimeout") { settings.forwardTimeout = timeout }
        if let ttl = reader.duration(map["cacheMaxTTL"], at: "dns.cacheMaxTTL") { settings.cacheMaxTTL = ttl }
        if let size = reader.int(map["cacheSize"], at: "dns.cacheSize", range: 0...10_000_000) { settings.cacheSize = size }
        settings.privateDomainSuffixes = reader.sequence(map["privateDomainSuffixes"], at: "dns.privateDomainSuffixes").compactMap {
            reader.string($0.node, at: $0.path)
        }
        if let node = map["limits"], let limits = parseDNSLimits(node) { settings.limits = limits }
        if let node = map["rateLimit"], let rateLimit = parseRateLimit(node) { settings.rateLimit = rateLimit }
        settings.secondaries = reader.sequence(map["secondaries"], at: "dns.secondaries").compactMap(parseSecondary)
        settings.trustedForwarders = reader.sequence(map["trustedForwarders"], at: "dns.trustedForwarders").compactMap { node, path in
            // A bare address means that one host.
            if case .scalar(let scalar) = node, !scalar.string.contains("/") {
                return reader.address(node, at: path).map { IPv4Prefix(network: $0, length: 32)! }
            }
            return reader.prefix(node, at: path)
        }
        return settings
    }

    func parseSecondary(_ node: YAMLValue, _ path: String) -> DNSSecondary? {
        guard let map = reader.mapping(
            node, at: path, allowed: ["name", "key", "vpc", "zone", "notify", "allowFrom"], required: ["name", "key", "vpc"]
        ) else { return nil }
        let key = map["key"].flatMap { parseTransferKey($0, at: "\(path).key") }
        let notify = reader.sequence(map["notify"], at: "\(path).notify").compactMap { reader.endpoint($0.node, at: $0.path) }
        let allowFrom = reader.sequence(map["allowFrom"], at: "\(path).allowFrom").compactMap { node, path in
            // A bare address means that one host.
            if case .scalar(let scalar) = node, !scalar.string.contains("/") {
                return reader.address(node, at: path).map { IPv4Prefix(network: $0, length: 32)! }
            }
            return reader.prefix(node, at: path)
        }
        let zone = reader.string(map["zone"], at: "\(path).zone")
        guard let name = reader.string(map["name"], at: "\(path).name"), let key,
              let vpc = reader.string(map["vpc"], at: "\(path).vpc")
        else { return nil }
        return DNSSecondary(name: name, key: key, vpc: vpc, zone: zone, notify: notify, allowFrom: allowFrom)
    }

    /// A TSIG key: `{name, algorithm, secretFile}` or `{name, algorithm, secret}`. The secret
    /// is never echoed in an issue: a typo in it must not land in a log.
    func parseTransferKey(_ node: YAMLValue, at path: String) -> TransferKey? {
        guard let map = reader.mapping(node, at: path, allowed: ["name", "algorithm", "secretFile", "secret"], required: ["name"])
        else { return nil }
        let name = reader.string(map["name"], at: "\(path).name").map { $0.lowercased().trimmingTrailingDot }
        if let name, !isDomainName(name) {
            reader.report("\(path).name", "'\(name)' is not a domain name", hint: "write the key's name as both sides spell it, e.g. vpc1-a.key")
        }
        let algorithm = map["algorithm"].map {
            reader.oneOf($0, at: "\(path).algorithm", TSIGAlgorithmName.self, choices: TSIGAlgorithmName.allCases)
        } ?? .some(.hmacSHA256)
        var secret: TransferKeySecret?
        switch (map["secretFile"], map["secret"]) {
        case (nil, nil):
            reader.report("\(path).secretFile", "is missing", hint: "give the file holding the base64 secret (as tsig-keygen prints it), or secret: inline")
        case (.some, .some):
            reader.report("\(path).secret", "is given with secretFile", hint: "keep one of secretFile and secret")
        case (let file?, nil):
            secret = reader.string(file, at: "\(path).secretFile").map { .file($0) }
        case (nil, let inline?):
            if case .scalar(let scalar) = inline, let bytes = SecretBytes(base64: scalar.string) {
                secret = .inline(bytes)
            } else {
                reader.report("\(path).secret", "is not a base64 secret (value not shown)", hint: "paste the secret tsig-keygen printed, or use secretFile")
            }
        }
        guard let name, isDomainName(name), let algorithm, let secret else { return nil }
        return TransferKey(name: name, algorithm: algorithm, secret: secret)
    }

    func parseDNSLimits(_ node: YAMLValue) -> DNSLimits? {
        guard let map = reader.mapping(
            node, at: "dns.limits",
            allowed: ["tcpConnections", "tcpConnectionsPerSource", "tcpQueuedAnswers", "tcpMessageTimeout",
                      "forwardInFlight", "forwardInFlightPerClient"]
        ) else { return nil }
        var limits = DNSLimits()
        if let n = reader.int(map["tcpConnections"], at: "dns.limits.tcpConnections", range: 1...1_000_000) { limits.tcpConnections = n }
        if let n = reader.int(map["tcpConnectionsPerSource"], at: "dns.limits.tcpConnectionsPerSource", range: 1...1_000_000) {
            limits.tcpConnectionsPerSource = n
        }
        if let n = reader.int(map["tcpQueuedAnswers"], at: "dns.limits.tcpQueuedAnswers", range: 1...65_535) { limits.tcpQueuedAnswers = n }
        if let d = reader.duration(map["tcpMessageTimeout"], at: "dns.limits.tcpMessageTimeout") { limits.tcpMessageTimeout = d }
        if let n = reader.int(map["forwardInFlight"], at: "dns.limits.forwardInFlight", range: 1...100_000) { limits.forwardInFlight = n }
        if let n = reader.int(map["forwardInFlightPerClient"], at: "dns.limits.forwardInFlightPerClient", range: 1...100_000) {
            limits.forwardInFlightPerClient = n
        }
        // A share left at its default follows a smaller total; one written down must fit in it.
        if map["tcpConnectionsPerSource"] == nil { limits.tcpConnectionsPerSource = min(limits.tcpConnectionsPerSource, limits.tcpConnections) }
        if map["forwardInFlightPerClient"] == nil { limits.forwardInFlightPerClient = min(limits.forwardInFlightPerClient, limits.forwardInFlight) }
        if limits.tcpConnectionsPerSource > limits.tcpConnections {
            reader.report("dns.limits.tcpConnectionsPerSource", "\(limits.tcpConnectionsPerSource) is more than dns.limits.tcpConnections (\(limits.tcpConnections))",
                          hint: "a source cannot hold more connections than all of them together")
        }
        if limits.forwardInFlightPerClient > limits.forwardInFlight {
            reader.report("dns.limits.forwardInFlightPerClient", "\(limits.forwardInFlightPerClient) is more than dns.limits.forwardInFlight (\(limits.forwardInFlight))",
                          hint: "a client cannot hold more questions than all of them together")
        }
        return limits
    }

    func parseRateLimit(_ node: YAMLValue) -> DNSRateLimit? {
        guard let map = reader.mapping(node, at: "dns.rateLimit", allowed: ["responsesPerSecond", "slip", "ipv4PrefixLength"]) else {
            return nil
        }
        var rateLimit = DNSRateLimit()
        if let n = reader.int(map["responsesPerSecond"], at: "dns.rateLimit.responsesPerSecond", range: 0...1_000_000) {
            rateLimit.responsesPerSecond = n
        }
        if let n = reader.int(map["slip"], at: "dns.rateLimit.slip", range: 0...100) { rateLimit.slip = n }
        if let n = reader.int(map["ipv4PrefixLength"], at: "dns.rateLimit.ipv4PrefixLength", range: 8...32) { rateLimit.ipv4PrefixLength = n }
        return rateLimit
    }

    func parseGateway(_ node: YAMLValue) -> GatewaySettings? {
        guard let map = reader.mapping(node, at: "gateway", allowed: [
            "tcpIdleTimeout", "udpIdleTimeout", "natPorts", "limits", "attribution", "kernelNamespace", "spliceAfterExchanges",
        ]) else {
            return nil
        }
        var settings = GatewaySettings()
        if let timeout = reader.duration(map["tcpIdleTimeout"], at: "gateway.tcpIdleTimeout") { settings.tcpIdleTimeout = timeout }
        if let timeout = reader.duration(map["udpIdleTimeout"], at: "gateway.udpIdleTimeout") { settings.udpIdleTimeout = timeout }
        if let ports = map["natPorts"].flatMap({ parsePorts($0, at: "gateway.natPorts") }) { settings.natPorts = ports }
        if let node = map["limits"], let limits = parseGatewayLimits(node) { settings.limits = limits }
        if let node = map["attribution"], let attribution = parseAttribution(node) { settings.attribution = attribution }
        if let n = reader.int(map["spliceAfterExchanges"], at: "gateway.spliceAfterExchanges", range: 0...1_000_000) {
            settings.spliceAfterExchanges = n
        }
        if let name = map["kernelNamespace"].flatMap({ reader.string($0, at: "gateway.kernelNamespace") }) {
            if isInterfaceName(name) { settings.kernelNamespace = name } else {
                reader.report("gateway.kernelNamespace", "'\(name)' is not a namespace name ZoneLink creates",
                              hint: "1 to 15 letters, digits, '-', '_' or '.' (default \(GatewaySettings.defaultKernelNamespace))")
            }
        }
        return settings
    }

    func parseAttribution(_ node: YAMLValue) -> AttributionSettings? {
        let path = "gateway.attribution"
        guard let map = reader.mapping(node, at: path, allowed: ["enabled", "maxFileSize", "files"]) else { return nil }
        var settings = AttributionSettings()
        if let enabled = reader.bool(map["enabled"], at: "\(path).enabled") { settings.enabled = enabled }
        if let n = reader.int(map["maxFileSize"], at: "\(path).maxFileSize", range: (64 << 10)...(16 << 30)) { settings.maxFileSize = n }
        if let n = reader.int(map["files"], at: "\(path).files", range: 1...1000) { settings.files = n }
        return settings
    }

    func parseGatewayLimits(_ node: YAMLValue) -> GatewayLimits? {
        let path = "gateway.limits"
        guard let map = reader.mapping(node, at: path, allowed: ["flows", "flowsPerEndpoint", "flowsPerClient", "natPortsPerClient"]) else {
            return nil
        }
        var limits = GatewayLimits()
        let most = 10_000_000
        if let n = reader.int(map["flows"], at: "\(path).flows", range: 1...most) { limits.flows = n }
        if let n = reader.int(map["flowsPerEndpoint"], at: "\(path).flowsPerEndpoint", range: 1...most) { limits.flowsPerEndpoint = n }
        if let n = reader.int(map["flowsPerClient"], at: "\(path).flowsPerClient", range: 1...most) { limits.flowsPerClient = n }
        if let n = reader.int(map["natPortsPerClient"], at: "\(path).natPortsPerClient", range: 1...65535) { limits.natPortsPerClient = n }
        return limits
    }

    func parseControl(_ node: YAMLValue) -> ControlSettings? {
        guard let map = reader.mapping(
            node, at: "control", allowed: ["connections", "headerTimeout", "bodyTimeout", "idleTimeout", "maxBodySize", "store"]
        ) else { return nil }
        var settings = ControlSettings()
        if let n = reader.int(map["connections"], at: "control.connections", range: 1...100_000) { settings.connections = n }
        if let timeout = reader.duration(map["headerTimeout"], at: "control.headerTimeout") { settings.headerTimeout = timeout }
        if let timeout = reader.duration(map["bodyTimeout"], at: "control.bodyTimeout") { settings.bodyTimeout = timeout }
        if let timeout = reader.duration(map["idleTimeout"], at: "control.idleTimeout") { settings.idleTimeout = timeout }
        if let n = reader.int(map["maxBodySize"], at: "control.maxBodySize", range: 1024...(256 << 20)) { settings.maxBodySize = n }
        if let text = reader.string(map["store"], at: "control.store") {
            do {
                settings.store = try StoreLocation.parse(text)
            } catch {
                reader.report("control.store", error.problem, hint: error.hint)
            }
        }
        return settings
    }

    func parseDescriptors(_ node: YAMLValue) -> DescriptorSettings? {
        guard let map = reader.mapping(node, at: "descriptors", allowed: ["reserve"]) else { return nil }
        var settings = DescriptorSettings()
        if let n = reader.int(map["reserve"], at: "descriptors.reserve", range: 1...1_000_000) { settings.reserve = n }
        return settings
    }

    func parseAccount(_ node: YAMLValue, _ path: String) -> Account? {
        guard let map = reader.mapping(node, at: path, allowed: ["id", "name"], required: ["id", "name"]),
              let id = reader.string(map["id"], at: "\(path).id"),
              let name = reader.string(map["name"], at: "\(path).name")
        else { return nil }
        return Account(id: id, name: name)
    }

    func parseVPC(_ node: YAMLValue, _ path: String) -> VPC? {
        guard let map = reader.mapping(
            node, at: path,
            allowed: ["id", "account", "cidr", "netns", "interface", "dnsAddress", "vswitches", "securityGroups"],
            required: ["id", "account", "cidr"]
        ) else { return nil }
        let vswitches = reader.sequence(map["vswitches"], at: "\(path).vswitches").compactMap { node, path -> VSwitch? in
            guard let entry = reader.mapping(node, at: path, allowed: ["id", "zone", "cidr"], required: ["id", "zone", "cidr"]),
                  let id = reader.string(entry["id"], at: "\(path).id"),
                  let zone = reader.string(entry["zone"], at: "\(path).zone"),
                  let cidr = reader.prefix(entry["cidr"], at: "\(path).cidr")
            else { return nil }
            return VSwitch(id: id, zone: zone, cidr: cidr)
        }
        let groups = reader.sequence(map["securityGroups"], at: "\(path).securityGroups").compactMap(parseSecurityGroup)
        guard let id = reader.string(map["id"], at: "\(path).id"),
              let account = reader.string(map["account"], at: "\(path).account"),
              let cidr = reader.prefix(map["cidr"], at: "\(path).cidr")
        else { return nil }
        let dnsAddress = map["dnsAddress"].flatMap { reader.address($0, at: "\(path).dnsAddress") }
        return VPC(
            id: id, account: account, cidr: cidr, netns: reader.string(map["netns"], at: "\(path).netns"),
            interface: reader.string(map["interface"], at: "\(path).interface"), dnsAddress: dnsAddress,
            vswitches: vswitches, securityGroups: groups)
    }

    func parseSecurityGroup(_ node: YAMLValue, _ path: String) -> SecurityGroup? {
        guard let map = reader.mapping(node, at: path, allowed: ["id", "ingress"], required: ["id"]),
              let id = reader.string(map["id"], at: "\(path).id")
        else { return nil }
        let rules = reader.sequence(map["ingress"], at: "\(path).ingress").compactMap { node, path -> IngressRule? in
            guard let rule = reader.mapping(node, at: path, allowed: ["protocol", "ports", "source"], required: ["protocol", "source"])
            else { return nil }
            let proto: TransportProtocol??
            switch reader.string(rule["protocol"], at: "\(path).protocol") {
            case "all": proto = .some(nil)
            case let text?:
                proto = TransportProtocol(rawValue: text).map { .some($0) }
                if proto == nil { reader.report("\(path).protocol", "'\(text)' is not a protocol", hint: "one of: tcp, udp, all") }
            case nil: proto = nil
            }
            let ports = rule["ports"].map { parsePorts($0, at: "\(path).ports") } ?? .some(1...65535)
            guard let proto, let ports, let source = reader.prefix(rule["source"], at: "\(path).source") else { return nil }
            return IngressRule(protocol: proto, ports: ports, source: source)
        }
        return SecurityGroup(id: id, ingress: rules)
    }

    /// `"80"`, `"8000-8080"` or `"all"`.
    func parsePorts(_ node: YAMLValue, at path: String) -> ClosedRange<UInt16>? {
        guard let text = reader.string(node, at: path) else { return nil }
        if text == "all" { return 1...65535 }
        let bounds = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt16($0) }
        if bounds.count == 1, let port = bounds[0], port > 0 { return port...port }
        if bounds.count == 2, let low = bounds[0], let high = bounds[1], low > 0, low <= high { return low...high }
        reader.report(path, "'\(text)' is not a port or port range", hint: "write \"80\", \"8000-8080\" or \"all\"")
        return nil
    }

    func parseLoadBalancer(_ node: YAMLValue, _ path: String) -> LoadBalancer? {
        guard let map = reader.mapping(
            node, at: path,
            allowed: ["id", "account", "vpc", "zone", "backupZone", "natAddresses", "address", "listeners"],
            required: ["id", "account", "vpc", "zone"]
        ) else { return nil }
        let nat = reader.sequence(map["natAddresses"], at: "\(path).natAddresses").compactMap { reader.address($0.node, at: $0.path) }
        let address = map["address"].flatMap { reader.address($0, at: "\(path).address") }
        let backupZone = map["backupZone"].flatMap { reader.string($0, at: "\(path).backupZone") }
        let listeners = reader.sequence(map["listeners"], at: "\(path).listeners").compactMap(parseListener)
        guard let id = reader.string(map["id"], at: "\(path).id"),
              let account = reader.string(map["account"], at: "\(path).account"),
              let vpc = reader.string(map["vpc"], at: "\(path).vpc"),
              let zone = reader.string(map["zone"], at: "\(path).zone")
        else { return nil }
        return LoadBalancer(
            id: id, account: account, vpc: vpc, zone: zone, backupZone: backupZone, natAddresses: nat, address: address,
            listeners: listeners)
    }

    func parseListener(_ node: YAMLValue, _ path: String) -> LoadBalancerListener? {
        guard let map = reader.mapping(
            node, at: path,
            allowed: ["protocol", "port", "backendPort", "scheduler", "backends", "healthCheck"],
            required: ["protocol", "port"]
        ) else { return nil }
        let proto = reader.oneOf(map["protocol"], at: "\(path).protocol", TransportProtocol.self, choices: TransportProtocol.allCases)
        let port = reader.port(map["port"], at: "\(path).port")
        let backendPort = map["backendPort"].flatMap { reader.port($0, at: "\(path).backendPort") }
        let scheduler = map["scheduler"].flatMap {
            reader.oneOf($0, at: "\(path).scheduler", Scheduler.self, choices: [.wrr, .wlc])
        } ?? .wrr
        let backends = reader.sequence(map["backends"], at: "\(path).backends").compactMap { node, path -> Backend? in
            guard let entry = reader.mapping(node, at: path, allowed: ["address", "weight"], required: ["address"]),
                  let address = reader.address(entry["address"], at: "\(path).address")
            else { return nil }
            let weight = entry["weight"].flatMap { reader.int($0, at: "\(path).weight", range: 0...65535) } ?? 100
            return Backend(address: address, weight: weight)
        }
        let healthCheck = map["healthCheck"].flatMap { parseHealthCheck($0, at: "\(path).healthCheck") } ?? HealthCheck()
        guard let proto, let port else { return nil }
        return LoadBalancerListener(
            protocol: proto, port: port, backendPort: backendPort, scheduler: scheduler, backends: backends,
            healthCheck: healthCheck)
    }

    func parseHealthCheck(_ node: YAMLValue, at path: String) -> HealthCheck? {
        guard let map = reader.mapping(
            node, at: path,
            allowed: ["type", "path", "expectStatus", "interval", "timeout", "healthyThreshold", "unhealthyThreshold"]
        ) else { return nil }
        var check = HealthCheck()
        switch map["type"].flatMap({ reader.string($0, at: "\(path).type") }) ?? "tcp" {
        case "tcp":
            for key in ["path", "expectStatus"] where map[key] != nil {
                reader.report("\(path).\(key)", "only applies to HTTP health checks", hint: "add 'type: http' or remove it")
            }
        case "http":
            let urlPath = map["path"].flatMap { reader.string($0, at: "\(path).path") } ?? "/"
            if !urlPath.hasPrefix("/") { reader.report("\(path).path", "'\(urlPath)' is not an absolute path", hint: "start it with /") }
            let status = map["expectStatus"].flatMap { reader.int($0, at: "\(path).expectStatus", range: 100...599) } ?? 200
            check.kind = .http(path: urlPath, expectStatus: status)
        case let other:
            reader.report("\(path).type", "'\(other)' is not a health check type", hint: "one of: tcp, http")
        }
        if let interval = reader.duration(map["interval"], at: "\(path).interval") { check.interval = interval }
        if let timeout = reader.duration(map["timeout"], at: "\(path).timeout") { check.timeout = timeout }
        if let n = reader.int(map["healthyThreshold"], at: "\(path).healthyThreshold", range: 1...10) { check.healthyThreshold = n }
        if let n = reader.int(map["unhealthyThreshold"], at: "\(path).unhealthyThreshold", range: 1...10) { check.unhealthyThreshold = n }
        return check
    }

    func parseService(_ node: YAMLValue, _ path: String) -> EndpointService? {
        guard let map = reader.mapping(
            node, at: path,
            allowed: ["id", "account", "resources", "autoAcceptConnections", "zoneAffinity", "whitelist", "privateDomain", "proxyProtocol",
                      "connectionBandwidth", "dataPlane"],
            required: ["id", "account", "resources"]
        ) else { return nil }
        let resources = reader.sequence(map["resources"], at: "\(path).resources").compactMap { node, path -> ServiceResource? in
            guard let entry = reader.mapping(node, at: path, allowed: ["zone", "loadBalancer"], required: ["zone", "loadBalancer"]),
                  let zone = reader.string(entry["zone"], at: "\(path).zone"),
                  let lb = reader.string(entry["loadBalancer"], at: "\(path).loadBalancer")
            else { return nil }
            return ServiceResource(zone: zone, loadBalancer: lb)
        }
        let whitelist = reader.sequence(map["whitelist"], at: "\(path).whitelist").compactMap { reader.string($0.node, at: $0.path) }
        var proxyProtocol = false
        if let value = map["proxyProtocol"].flatMap({ reader.string($0, at: "\(path).proxyProtocol") }) {
            if value == "v2" { proxyProtocol = true } else if value != "off" {
                reader.report("\(path).proxyProtocol", "'\(value)' is not supported", hint: "write v2, or off")
            }
        }
        let connectionBandwidth = parseConnectionBandwidth(map["connectionBandwidth"], at: "\(path).connectionBandwidth")
        var dataPlane = ServiceDataPlane.relay
        if let value = map["dataPlane"].flatMap({ reader.string($0, at: "\(path).dataPlane") }) {
            if let known = ServiceDataPlane(rawValue: value) { dataPlane = known } else {
                reader.report("\(path).dataPlane", "'\(value)' is not a data plane", hint: "write relay (the default) or kernel")
            }
        }
        guard let id = reader.string(map["id"], at: "\(path).id"),
              let account = reader.string(map["account"], at: "\(path).account")
        else { return nil }
        return EndpointService(
            id: id, account: account, resources: resources,
            autoAcceptConnections: reader.bool(map["autoAcceptConnections"], at: "\(path).autoAcceptConnections") ?? false,
            zoneAffinity: reader.bool(map["zoneAffinity"], at: "\(path).zoneAffinity") ?? false,
            whitelist: whitelist,
            privateDomain: reader.string(map["privateDomain"], at: "\(path).privateDomain"),
            proxyProtocol: proxyProtocol, connectionBandwidth: connectionBandwidth, dataPlane: dataPlane)
    }

    /// `connectionBandwidth`: a whole number of Mbit/s in `EndpointService.connectionBandwidthLimits`.
    func parseConnectionBandwidth(_ node: YAMLValue?, at path: String) -> Int? {
        guard let node else { return nil }
        let range = EndpointService.connectionBandwidthLimits
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else {
            reader.report(path, "must be a whole number of Mbit/s", hint: "between \(range.lowerBound) and \(range.upperBound), or leave it out for no cap")
            return nil
        }
        guard range.contains(value) else {
            reader.report(path, "\(value) Mbit/s is not a bandwidth cap: a cap is at least 1 Mbit/s and at most \(range.upperBound)",
                          hint: "between \(range.lowerBound) and \(range.upperBound), or leave it out for no cap")
            return nil
        }
        return value
    }

    /// An endpoint written the plain way (known keys, each once, every value well-formed), read
    /// without building a key path or a dictionary per value; nil for anything else, which
    /// `parseEndpoint` then reads and reports on. It accepts exactly what `parseEndpoint` accepts
    /// without an issue, and gives the same `Endpoint`: at 100,000 endpoints the key paths alone
    /// were millions of strings, built for problems that were not there.
    func plainEndpoint(_ node: YAMLValue) -> Endpoint? {
        guard case .mapping(let pairs) = node else { return nil }
        var id: String?, account: String?, service: String?, vpc: String?
        var groups: [String]?, enis: [ENI]?
        var connection: ConnectionState?, hasConnection = false
        for (keyNode, value) in pairs {
            guard case .scalar(let key) = keyNode else { return nil }
            switch key.string {
            case "id": guard id == nil, let text = Self.plainString(value) else { return nil }; id = text
            case "account": guard account == nil, let text = Self.plainString(value) else { return nil }; account = text
            case "service": guard service == nil, let text = Self.plainString(value) else { return nil }; service = text
            case "vpc": guard vpc == nil, let text = Self.plainString(value) else { return nil }; vpc = text
            case "securityGroups":
                guard groups == nil, case .sequence(let items) = value else { return nil }
                var names: [String] = []
                names.reserveCapacity(items.count)
                for item in items {
                    guard let name = Self.plainString(item) else { return nil }
                    names.append(name)
                }
                groups = names
            case "zones":
                guard enis == nil, case .sequence(let items) = value else { return nil }
                var read: [ENI] = []
                read.reserveCapacity(items.count)
                for item in items {
                    guard let eni = Self.plainENI(item) else { return nil }
                    read.append(eni)
                }
                enis = read
            case "connection":
                guard !hasConnection, let text = Self.plainString(value), let state = ConnectionState(rawValue: text) else { return nil }
                connection = state
                hasConnection = true
            default:
                return nil
            }
        }
        guard let id, let account, let service, let vpc, let enis else { return nil }
        return Endpoint(
            id: id, account: account, service: service, vpc: vpc, securityGroups: groups ?? [], enis: enis,
            connection: connection)
    }

    /// One `zones` entry of `plainEndpoint`: `{zone, vswitch[, address]}`, each once and well-formed.
    private static func plainENI(_ node: YAMLValue) -> ENI? {
        guard case .mapping(let pairs) = node else { return nil }
        var zone: String?, vswitch: String?, address: IPv4Address?, hasAddress = false
        for (keyNode, value) in pairs {
            guard case .scalar(let key) = keyNode else { return nil }
            switch key.string {
            case "zone": guard zone == nil, let text = plainString(value) else { return nil }; zone = text
            case "vswitch": guard vswitch == nil, let text = plainString(value) else { return nil }; vswitch = text
            case "address":
                guard !hasAddress, let text = plainString(value), let parsed = IPv4Address(text) else { return nil }
                address = parsed
                hasAddress = true
            default:
                return nil
            }
        }
        guard let zone, let vswitch else { return nil }
        return hasAddress ? ENI(zone: zone, vswitch: vswitch, address: address) : ENI(zone: zone, vswitch: vswitch)
    }

    /// What `YAMLReader.string` accepts without an issue: a non-empty scalar.
    private static func plainString(_ node: YAMLValue) -> String? {
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else { return nil }
        return scalar.string
    }

    func parseEndpoint(_ node: YAMLValue, _ path: String) -> Endpoint? {
        guard let map = reader.mapping(
            node, at: path,
            allowed: ["id", "account", "service", "vpc", "securityGroups", "zones", "connection"],
            required: ["id", "account", "service", "vpc", "zones"]
        ) else { return nil }
        let groups = reader.sequence(map["securityGroups"], at: "\(path).securityGroups").compactMap { reader.string($0.node, at: $0.path) }
        let enis = reader.sequence(map["zones"], at: "\(path).zones").compactMap { node, path -> ENI? in
            guard let entry = reader.mapping(node, at: path, allowed: ["zone", "vswitch", "address"], required: ["zone", "vswitch"]),
                  let zone = reader.string(entry["zone"], at: "\(path).zone"),
                  let vswitch = reader.string(entry["vswitch"], at: "\(path).vswitch")
            else { return nil }
            if let node = entry["address"] {
                guard let address = reader.address(node, at: "\(path).address") else { return nil }
                return ENI(zone: zone, vswitch: vswitch, address: address)
            }
            return ENI(zone: zone, vswitch: vswitch)
        }
        let connection = map["connection"].flatMap {
            reader.oneOf($0, at: "\(path).connection", ConnectionState.self, choices: ConnectionState.allCases)
        }
        guard let id = reader.string(map["id"], at: "\(path).id"),
              let account = reader.string(map["account"], at: "\(path).account"),
              let service = reader.string(map["service"], at: "\(path).service"),
              let vpc = reader.string(map["vpc"], at: "\(path).vpc")
        else { return nil }
        return Endpoint(
            id: id, account: account, service: service, vpc: vpc, securityGroups: groups, enis: enis,
            connection: connection)
    }
}
