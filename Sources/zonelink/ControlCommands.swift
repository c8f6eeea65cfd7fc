// The control plane's command line: one subcommand per seed step, over the control API with
// the client generated from docs/openapi.yaml, each printing a readable table or, with
// `--json`, the API's JSON. Errors: the API's message on stderr, exit 1 when refused (4xx), 2
// otherwise.
import ArgumentParser
import Foundation
import OpenAPIRuntime
import ZoneLinkAPI

// MARK: - Output helpers

/// Prints rows as columns, padded to the widest cell of each.
func printControlTable(_ header: [String], _ rows: [[String]]) {
    let table = [header] + rows
    let widths = header.indices.map { column in table.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
    for row in table {
        let line = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
        print(line)
    }
}

/// Prints `key: value` lines, keys aligned.
func printControlFields(_ fields: [(String, String)]) {
    let width = fields.map(\.0.count).max() ?? 0
    for (key, value) in fields {
        print((key + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + " " + value)
    }
}

/// Writes a value as the API's JSON (keys sorted), with a final newline.
func printControlJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
}

/// What every control command takes: where the API is, the token, and `--json`.
struct ControlOutput: ParsableArguments {
    @OptionGroup var api: APIOptions

    @Flag(help: "Print the API's JSON instead of a table or a message.")
    var json = false

    /// Calls the API and shows the answer: as JSON with `--json`, else with `show`.
    func present<Value: Encodable>(_ call: (Client) async throws -> Value, _ show: (Value) -> Void) async throws {
        let value = try await api.call(call)
        if json { return try printControlJSON(value) }
        show(value)
    }
}

/// A command that reads one thing and shows it: every `list` and `show`.
protocol ReadCommand: AsyncParsableCommand {
    associatedtype Shown: Encodable
    var output: ControlOutput { get }
    func read(_ api: Client) async throws -> Shown
    func show(_ value: Shown)
}

extension ReadCommand {
    func run() async throws {
        try await output.present(read, show)
    }
}

/// A command that deletes one thing: every `delete` and `remove`.
protocol DeleteCommand: AsyncParsableCommand {
    associatedtype Deleted: Encodable
    var output: ControlOutput { get }
    func delete(_ api: Client) async throws -> Deleted
    /// What is printed once it is gone.
    var done: String { get }
}

extension DeleteCommand {
    func run() async throws {
        try await output.present(delete) { _ in print(done) }
    }
}

func yesNo(_ value: Bool) -> String { value ? "yes" : "no" }

/// The parts of an argument written `A=B[=C]` (`--resource`, `--zone`): `count` of them, none
/// empty, else a validation error that shows the form and an example.
func assignmentParts(_ text: String, _ count: ClosedRange<Int>, of argument: String, form: String, example: String) throws -> [String] {
    let parts = text.split(separator: "=", omittingEmptySubsequences: false).map(String.init)
    guard count.contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
        throw ValidationError("\(argument) '\(text)': expected \(form), e.g. \(example)")
    }
    return parts
}

/// `--data-plane relay|kernel`: the API's own enumeration, so the two never disagree.
extension Components.Schemas.DataPlane: ExpressibleByArgument {}

func printService(_ service: Components.Schemas.Service) {
    var fields: [(String, String)] = [
        ("ID", service.id), ("Account", service.account), ("Zones", service.zones.joined(separator: ", ")),
        ("Auto-accept", yesNo(service.autoAcceptConnections)), ("Zone affinity", yesNo(service.zoneAffinity)),
        ("Private domain", service.privateDomain ?? "-"), ("DNS name", service.dnsName), ("Origin", service.origin.rawValue),
    ]
    if let resources = service.resources {
        fields.append(("Resources", resources.map { "\($0.zone)=\($0.loadBalancer)" }.joined(separator: ", ")))
    }
    if let proxyProtocol = service.proxyProtocol { fields.append(("PROXY protocol", yesNo(proxyProtocol))) }
    if service.resources != nil {
        fields.append(("Bandwidth cap", service.connectionBandwidth.map { "\($0) Mbit/s per connection and direction" } ?? "none"))
    }
    if let dataPlane = service.dataPlane { fields.append(("Data plane", dataPlane.rawValue)) }
    if let whitelist = service.whitelist {
        fields.append(("Whitelist", whitelist.isEmpty ? "-" : whitelist.map(\.account).joined(separator: ", ")))
    }
    printControlFields(fields)
}

func printServices(_ services: [Components.Schemas.Service]) {
    printControlTable(
        ["ID", "ACCOUNT", "ZONES", "AUTO-ACCEPT", "ZONE-AFFINITY", "ORIGIN", "DNS NAME"],
        services.map {
            [$0.id, $0.account, $0.zones.joined(separator: ","), yesNo($0.autoAcceptConnections), yesNo($0.zoneAffinity),
             $0.origin.rawValue, $0.dnsName]
        })
}

func printEndpoint(_ endpoint: Components.Schemas.Endpoint) {
    var fields: [(String, String)] = [
        ("ID", endpoint.id), ("Service", endpoint.service), ("Account", endpoint.account),
        ("Zones", endpoint.zones.joined(separator: ", ")), ("Connection", endpoint.connection.rawValue),
        ("Origin", endpoint.origin.rawValue),
    ]
    if let placement = endpoint.placement {
        fields += [("VPC", placement.vpc), ("Security groups", placement.securityGroups.joined(separator: ", ")),
                   ("DNS name", placement.dnsName)]
    }
    printControlFields(fields)
    if let enis = endpoint.placement?.enis, !enis.isEmpty {
        print()
        printControlTable(["ZONE", "VSWITCH", "ADDRESS", "DNS NAME"], enis.map { [$0.zone, $0.vswitch, $0.address, $0.dnsName] })
    }
}

func printEndpoints(_ endpoints: [Components.Schemas.Endpoint]) {
    printControlTable(
        ["ID", "SERVICE", "ACCOUNT", "VPC", "ZONES", "CONNECTION", "ORIGIN"],
        endpoints.map {
            [$0.id, $0.service, $0.account, $0.placement?.vpc ?? "-", $0.zones.joined(separator: ","), $0.connection.rawValue,
             $0.origin.rawValue]
        })
}

func printWhitelist(_ entries: [Components.Schemas.WhitelistEntry]) {
    printControlTable(["SERVICE", "ACCOUNT", "ORIGIN"], entries.map { [$0.service, $0.account, $0.origin.rawValue] })
}

// MARK: - zonelink service

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Endpoint services: the provider's side.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self, Whitelist.self, Connections.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an endpoint service (the console's \"Create Endpoint Service\").")

        @OptionGroup var output: ControlOutput

        @Option(name: .customLong("resource"), help: ArgumentHelp("A zone and its load balancer (repeatable).", valueName: "ZONE=LOAD-BALANCER"))
        var resources: [String] = []

        @Flag(inversion: .prefixedNo, help: "Accept new connections automatically (default: no, they wait as Disconnected).")
        var autoAccept: Bool?

        @Flag(inversion: .prefixedNo, help: "Zone affinity: an endpoint's name answers the ENI of the client's zone first (default: no).")
        var zoneAffinity: Bool?

        @Flag(inversion: .prefixedNo, help: "PROXY protocol v2 toward the provider (default: no).")
        var proxyProtocol: Bool?

        @Option(name: .customLong("private-domain"), help: "A private domain name for the service.")
        var privateDomain: String?

        @Option(name: .customLong("connection-bandwidth"), help: ArgumentHelp("Cap each endpoint connection at MBITS per direction (default: no cap).", valueName: "MBITS"))
        var connectionBandwidth: Int?

        @Option(name: .customLong("data-plane"), help: ArgumentHelp("What carries the flows: relay (default; ZoneLink's relay) or kernel (nftables NAT; not with PROXY protocol or a bandwidth cap).", valueName: "relay|kernel"))
        var dataPlane: Components.Schemas.DataPlane?

        @Option(name: .long, help: "The service ID, epsrv-… (default: generated).")
        var id: String?

        @Option(name: .long, help: "The provider's account ID (the operator must name one; default: the token's account).")
        var account: String?

        func validate() throws {
            guard !resources.isEmpty else { throw ValidationError("give at least one --resource ZONE=LOAD-BALANCER") }
            _ = try specs()
        }

        func specs() throws -> [Components.Schemas.ServiceResource] {
            try resources.map { text in
                let parts = try assignmentParts(text, 2...2, of: "--resource", form: "ZONE=LOAD-BALANCER", example: "eu-central-1b=clb-1")
                return Components.Schemas.ServiceResource(zone: parts[0], loadBalancer: parts[1])
            }
        }

        func run() async throws {
            let request = Components.Schemas.CreateServiceRequest(
                id: id, account: account, resources: try specs(), autoAcceptConnections: autoAccept, zoneAffinity: zoneAffinity,
                privateDomain: privateDomain, proxyProtocol: proxyProtocol, connectionBandwidth: connectionBandwidth, dataPlane: dataPlane)
            try await output.present({ try await $0.createService(body: .json(request)).created.body.json }, printService)
        }
    }

    struct List: ReadCommand {
        static let configuration = CommandConfiguration(abstract: "List the services this token may see.")
        @OptionGroup var output: ControlOutput
        func read(_ api: Client) async throws -> [Components.Schemas.Service] { try await api.listServices().ok.body.json }
        func show(_ services: [Components.Schemas.Service]) { printServices(services) }
    }

    struct Show: ReadCommand {
        static let configuration = CommandConfiguration(abstract: "Show one service.")
        @OptionGroup var output: ControlOutput
        @Argument(help: "The service ID.") var service: String
        func read(_ api: Client) async throws -> Components.Schemas.Service {
            try await api.showService(path: .init(service: service)).ok.body.json
        }
        func show(_ service: Components.Schemas.Service) { printService(service) }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change auto-accept, zone affinity, the bandwidth cap or the data plane of a service (connections keep their state; open flows follow the cap).")

        @OptionGroup var output: ControlOutput

        @Argument(help: "The service ID.")
        var service: String

        @Flag(inversion: .prefixedNo, help: "Accept new connections automatically.")
        var autoAccept: Bool?

        @Flag(inversion: .prefixedNo, help: "Zone affinity.")
        var zoneAffinity: Bool?

        @Option(name: .customLong("connection-bandwidth"), help: ArgumentHelp("Cap each endpoint connection at MBITS per direction; open flows follow.", valueName: "MBITS"))
        var connectionBandwidth: Int?

        @Flag(name: .customLong("no-connection-bandwidth"), help: "Lift the bandwidth cap.")
        var noConnectionBandwidth = false

        @Option(name: .customLong("data-plane"), help: ArgumentHelp("Move the service's new flows to relay or kernel (open flows keep theirs).", valueName: "relay|kernel"))
        var dataPlane: Components.Schemas.DataPlane?

        func validate() throws {
            guard autoAccept != nil || zoneAffinity != nil || connectionBandwidth != nil || noConnectionBandwidth || dataPlane != nil else {
                throw ValidationError("nothing to change: give --auto-accept/--no-auto-accept, --zone-affinity/--no-zone-affinity, --connection-bandwidth MBITS, --no-connection-bandwidth or --data-plane relay|kernel")
            }
            guard connectionBandwidth == nil || !noConnectionBandwidth else {
                throw ValidationError("--connection-bandwidth and --no-connection-bandwidth contradict each other: give one")
            }
        }

        func run() async throws {
            let change = Components.Schemas.UpdateServiceRequest(
                autoAcceptConnections: autoAccept, zoneAffinity: zoneAffinity, connectionBandwidth: connectionBandwidth,
                removeConnectionBandwidth: noConnectionBandwidth ? true : nil, dataPlane: dataPlane)
            try await output.present({ try await $0.updateService(path: .init(service: service), body: .json(change)).ok.body.json }, printService)
        }
    }

    struct Delete: DeleteCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a service created through the API.")
        @OptionGroup var output: ControlOutput
        @Argument(help: "The service ID.") var service: String
        func delete(_ api: Client) async throws -> Components.Schemas.Service {
            try await api.deleteService(path: .init(service: service)).ok.body.json
        }
        var done: String { "deleted service \(service)" }
    }

    // MARK: zonelink service whitelist

    struct Whitelist: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The accounts allowed to create endpoints of a service.", subcommands: [Add.self, Remove.self, List.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Allow an account to connect to a service.")

            @OptionGroup var output: ControlOutput

            @Argument(help: "The service ID.")
            var service: String

            @Argument(help: "The 16-digit account ID to allow.")
            var account: String

            func run() async throws {
                try await output.present({
                    try await $0.addWhitelistEntry(path: .init(service: service), body: .json(.init(account: account))).created.body.json
                }) { printWhitelist([$0]) }
            }
        }

        struct Remove: DeleteCommand {
            static let configuration = CommandConfiguration(abstract: "Remove an account from a service's whitelist.")
            @OptionGroup var output: ControlOutput
            @Argument(help: "The service ID.") var service: String
            @Argument(help: "The account ID to remove.") var account: String
            func delete(_ api: Client) async throws -> Components.Schemas.WhitelistEntry {
                try await api.removeWhitelistEntry(path: .init(service: service, account: account)).ok.body.json
            }
            var done: String { "removed \(account) from the whitelist of \(service)" }
        }

        struct List: ReadCommand {
            static let configuration = CommandConfiguration(abstract: "List a service's whitelist.")
            @OptionGroup var output: ControlOutput
            @Argument(help: "The service ID.") var service: String
            func read(_ api: Client) async throws -> [Components.Schemas.WhitelistEntry] {
                try await api.listWhitelist(path: .init(service: service)).ok.body.json
            }
            func show(_ entries: [Components.Schemas.WhitelistEntry]) { printWhitelist(entries) }
        }
    }

    // MARK: zonelink service connections

    struct Connections: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The endpoints connecting to a service, and the provider's accept, reject and disconnect.",
            subcommands: [List.self, Accept.self, Reject.self, Disconnect.self])

        struct List: ReadCommand {
            static let configuration = CommandConfiguration(abstract: "List the connections of a service.")
            @OptionGroup var output: ControlOutput
            @Argument(help: "The service ID.") var service: String
            func read(_ api: Client) async throws -> [Components.Schemas.Endpoint] {
                try await api.listConnections(path: .init(service: service)).ok.body.json
            }
            func show(_ endpoints: [Components.Schemas.Endpoint]) {
                printControlTable(
                    ["ENDPOINT", "ACCOUNT", "ZONES", "CONNECTION", "ORIGIN"],
                    endpoints.map { [$0.id, $0.account, $0.zones.joined(separator: ","), $0.connection.rawValue, $0.origin.rawValue] })
            }
        }

        struct Accept: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Accept a connection: Disconnected or Rejected → Connected.")
            @OptionGroup var action: ConnectionActionOptions
            func run() async throws {
                try await action.perform { try await $0.acceptConnection(path: .init(service: action.service, endpoint: action.endpoint)).ok.body.json }
            }
        }

        struct Reject: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Reject a connection: Disconnected or Connected → Rejected.")
            @OptionGroup var action: ConnectionActionOptions
            func run() async throws {
                try await action.perform { try await $0.rejectConnection(path: .init(service: action.service, endpoint: action.endpoint)).ok.body.json }
            }
        }

        struct Disconnect: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Disconnect a connection: Connected → Disconnected.")
            @OptionGroup var action: ConnectionActionOptions
            func run() async throws {
                try await action.perform {
                    try await $0.disconnectConnection(path: .init(service: action.service, endpoint: action.endpoint)).ok.body.json
                }
            }
        }
    }
}

/// What accept, reject and disconnect share: the service, the endpoint, the API.
struct ConnectionActionOptions: ParsableArguments {
    @OptionGroup var output: ControlOutput

    @Argument(help: "The service ID.")
    var service: String

    @Argument(help: "The endpoint ID.")
    var endpoint: String

    /// Calls the action and prints the connection's new state.
    func perform(_ action: (Client) async throws -> Components.Schemas.Endpoint) async throws {
        try await output.present(action) { print("\($0.id): \($0.connection.rawValue)") }
    }
}

// MARK: - zonelink endpoint

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint", abstract: "Endpoints: the consumer's side.",
        subcommands: [Create.self, List.self, Show.self, Delete.self, Zone.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an endpoint of a service in one of your VPCs (the console's \"Create Endpoint\").")

        @OptionGroup var output: ControlOutput

        @Option(name: .long, help: "The service ID.")
        var service: String

        @Option(name: .long, help: "The VPC.")
        var vpc: String

        @Option(name: .customLong("zone"), help: ArgumentHelp("A zone, its vSwitch and optionally the ENI's address (repeatable).", valueName: "ZONE=VSWITCH[=ADDRESS]"))
        var zones: [String] = []

        @Option(name: .customLong("security-group"), help: "A security group of the VPC (repeatable, at most five).")
        var securityGroups: [String] = []

        @Option(name: .long, help: "The endpoint ID, ep-… (default: generated).")
        var id: String?

        @Option(name: .long, help: "The consumer's account ID (the operator must name one; default: the token's account).")
        var account: String?

        func validate() throws {
            guard !zones.isEmpty else { throw ValidationError("give at least one --zone ZONE=VSWITCH[=ADDRESS]") }
            _ = try choices()
        }

        func choices() throws -> [Components.Schemas.ZoneChoice] {
            try zones.map { text in
                let parts = try assignmentParts(text, 2...3, of: "--zone", form: "ZONE=VSWITCH[=ADDRESS]", example: "eu-central-1b=vsw-1b")
                return Components.Schemas.ZoneChoice(zone: parts[0], vswitch: parts[1], address: parts.count == 3 ? parts[2] : nil)
            }
        }

        func run() async throws {
            let request = Components.Schemas.CreateEndpointRequest(
                id: id, account: account, service: service, vpc: vpc, securityGroups: securityGroups.isEmpty ? nil : securityGroups,
                zones: try choices())
            try await output.present({ try await $0.createEndpoint(body: .json(request)).created.body.json }, printEndpoint)
        }
    }

    struct List: ReadCommand {
        static let configuration = CommandConfiguration(abstract: "List the endpoints this token may see.")
        @OptionGroup var output: ControlOutput
        func read(_ api: Client) async throws -> [Components.Schemas.Endpoint] { try await api.listEndpoints().ok.body.json }
        func show(_ endpoints: [Components.Schemas.Endpoint]) { printEndpoints(endpoints) }
    }

    struct Show: ReadCommand {
        static let configuration = CommandConfiguration(abstract: "Show one endpoint: its connection, names and ENIs.")
        @OptionGroup var output: ControlOutput
        @Argument(help: "The endpoint ID.") var endpoint: String
        func read(_ api: Client) async throws -> Components.Schemas.Endpoint {
            try await api.showEndpoint(path: .init(endpoint: endpoint)).ok.body.json
        }
        func show(_ endpoint: Components.Schemas.Endpoint) { printEndpoint(endpoint) }
    }

    struct Delete: DeleteCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an endpoint created through the API.")
        @OptionGroup var output: ControlOutput
        @Argument(help: "The endpoint ID.") var endpoint: String
        func delete(_ api: Client) async throws -> Components.Schemas.Endpoint {
            try await api.deleteEndpoint(path: .init(endpoint: endpoint)).ok.body.json
        }
        var done: String { "deleted endpoint \(endpoint)" }
    }

    // MARK: zonelink endpoint zone

    struct Zone: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove an ENI of an endpoint, one zone at a time.", subcommands: [Add.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add an ENI in one more zone of the service; it serves while the connection is Connected.")
            @OptionGroup var output: ControlOutput
            @Argument(help: "The endpoint ID.") var endpoint: String
            @Argument(help: ArgumentHelp("The zone and the VPC's vSwitch in it.", valueName: "ZONE=VSWITCH")) var zone: String
            @Option(name: .long, help: "The ENI's address inside the vSwitch (default: the lowest free one).") var address: String?

            func validate() throws { _ = try choice() }

            func choice() throws -> Components.Schemas.ZoneChoice {
                let parts = try assignmentParts(zone, 2...2, of: "the zone", form: "ZONE=VSWITCH", example: "eu-central-1a=vsw-1a")
                return Components.Schemas.ZoneChoice(zone: parts[0], vswitch: parts[1], address: address)
            }

            func run() async throws {
                let body = try choice()
                try await output.present({
                    try await $0.addEndpointZone(path: .init(endpoint: endpoint), body: .json(body)).created.body.json
                }, printEndpoint)
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove the endpoint's ENI in a zone: its names go and its flows are closed (the last zone stays).")
            @OptionGroup var output: ControlOutput
            @Argument(help: "The endpoint ID.") var endpoint: String
            @Argument(help: "The zone.") var zone: String

            func run() async throws {
                try await output.present({
                    try await $0.removeEndpointZone(path: .init(endpoint: endpoint, zone: zone)).ok.body.json
                }, printEndpoint)
            }
        }
    }
}

// MARK: - zonelink zone shift

extension ZoneCommand {
    struct Shift: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a zone out of service for every service and VPC of the region, and bring it back (operator).",
            subcommands: [Start.self, List.self, End.self])

        struct Start: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Shift a zone away: DNS answers with the other zones' ENIs, no new flow goes to its backends.",
                discussion: """
                    Open flows continue unless --drain closes them. Refused when a service that has a healthy \
                    zone now would have none left, unless --force. Run again on a shifted zone to change its \
                    expiry, reason or drain.
                    """)
            @OptionGroup var output: ControlOutput
            @Argument(help: "The zone, e.g. eu-central-1a.") var zone: String
            @Option(name: .long, help: ArgumentHelp("End the shift by itself this long from now (1s to 168h; default: until ended).", valueName: "DURATION"))
            var expires: String?
            @Option(name: .long, help: "Why, one line (at most 256 bytes), shown by zone shift list and health.") var reason: String?
            @Option(name: .long, help: ArgumentHelp("Close the zone's open flows this long from now (1s to 24h; default: they continue).", valueName: "DURATION"))
            var drain: String?
            @Flag(name: .long, help: "Shift even when a service would be left without a healthy zone.") var force = false

            func run() async throws {
                let body = Components.Schemas.StartZonalShiftRequest(
                    zone: zone, expiresIn: expires, reason: reason, drainAfter: drain, force: force ? true : nil)
                try await output.present({ api in
                    // 201: a new shift; 200: the zone's shift changed.
                    let answer = try await api.startZonalShift(body: .json(body))
                    if case .created(let created) = answer { return try created.body.json }
                    return try answer.ok.body.json
                }, printZonalShift)
            }
        }

        struct List: ReadCommand {
            static let configuration = CommandConfiguration(abstract: "List the zones shifted away.")
            @OptionGroup var output: ControlOutput
            func read(_ api: Client) async throws -> [Components.Schemas.ZonalShift] { try await api.listZonalShifts().ok.body.json }
            func show(_ shifts: [Components.Schemas.ZonalShift]) { printZonalShifts(shifts) }
        }

        struct End: DeleteCommand {
            static let configuration = CommandConfiguration(abstract: "End a zone's shift: DNS and new flows return to it at once.")
            @OptionGroup var output: ControlOutput
            @Argument(help: "The zone.") var zone: String
            func delete(_ api: Client) async throws -> Components.Schemas.ZonalShift {
                try await api.endZonalShift(path: .init(zone: zone)).ok.body.json
            }
            var done: String { "zonal shift of \(zone) ended" }
        }
    }
}

/// RFC 3339, UTC, to the second.
func rfc3339(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

func printZonalShift(_ shift: Components.Schemas.ZonalShift) {
    printControlFields([
        ("Zone", shift.zone), ("Started", rfc3339(shift.startedAt)), ("Expires", shift.expiresAt.map(rfc3339) ?? "when ended"),
        ("Drain", shift.drainAt.map { "open flows closed at \(rfc3339($0))" } ?? "open flows continue"),
        ("Reason", (shift.reason ?? "").isEmpty ? "-" : shift.reason!),
    ])
}

func printZonalShifts(_ shifts: [Components.Schemas.ZonalShift]) {
    printControlTable(
        ["ZONE", "STARTED", "EXPIRES", "DRAIN", "REASON"],
        shifts.map {
            [$0.zone, rfc3339($0.startedAt), $0.expiresAt.map(rfc3339) ?? "-", $0.drainAt.map(rfc3339) ?? "-",
             ($0.reason ?? "").isEmpty ? "-" : $0.reason!]
        })
}

// MARK: - zonelink health

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Health of backends and endpoint zones, as the gateway sees it.")

    @OptionGroup var output: ControlOutput

    func run() async throws {
        try await output.present({ try await $0.health().ok.body.json }) { report in
            print("status: \(report.status.rawValue) (config serial \(report.configSerial))")
            print()
            printControlTable(
                ["LOAD BALANCER", "LISTENER", "BACKEND", "HEALTHY", "SHIFTED AWAY"],
                report.backends.map { [$0.loadBalancer, $0.listener, $0.address, yesNo($0.healthy), yesNo($0.shiftedAway)] })
            print()
            // Where each balancer serves from: home, shifted away, or failed over to its backup zone.
            printControlTable(
                ["LOAD BALANCER", "ZONE", "BACKUP ZONE", "STATE", "SERVING ZONE"],
                report.loadBalancers.map { [$0.loadBalancer, $0.zone, $0.backupZone ?? "-", $0.state.rawValue, $0.servingZone] })
            print()
            printControlTable(
                ["ENDPOINT", "ZONE", "HEALTHY", "SHIFTED AWAY", "STATE", "SERVING ZONE"],
                report.zones.map { [$0.endpoint, $0.zone, yesNo($0.healthy), yesNo($0.shiftedAway), $0.state.rawValue, $0.servingZone] })
            if !report.zonalShifts.isEmpty {
                print()
                printZonalShifts(report.zonalShifts)
            }
        }
    }
}
