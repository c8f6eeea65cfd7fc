// `zonelink dns explain` and the serving side of `GET /v1/dns/explain`: the question is
// answered by the responder serving now, with a recording trail (`Responder.explain`).
import ArgumentParser
import Foundation
import ZoneLinkAPI
import ZoneLinkControl
import ZoneLinkControlServer
import ZoneLinkCore
import ZoneLinkDNS

enum DNSExplain {
    /// The API's explainer over the responder `publisher` serves.
    static func explainer(_ publisher: ResponderPublisher) -> DNSExplainer {
        { query in
            let question = try question(query)
            return Components.Schemas.DNSExplanation(publisher.responder.explain(question))
        }
    }

    /// The question of the request, every unreadable part named (422 `invalid`).
    static func question(_ query: Operations.ExplainDNS.Input.Query) throws(ControlError) -> ExplainQuestion {
        var issues: [ConfigIssue] = []
        let name = DNSName(query.name)
        if name == nil { issues.append(ConfigIssue("name", "\(query.name.debugDescription) is not a domain name", hint: "labels of at most 63 bytes, 255 in all")) }
        let type = RRType(text: query._type ?? "A")
        if type == nil { issues.append(ConfigIssue("type", "\(query._type ?? "") is not a record type", hint: "a mnemonic (A, AAAA, TXT) or TYPEn")) }
        let source = query.source.map { IPv4Address($0) }
        if case .some(nil) = source { issues.append(ConfigIssue("source", "\(query.source ?? "") is not an IPv4 address", hint: "for example 10.10.2.1")) }
        let subnet = query.clientSubnet.map { IPv4Prefix($0) }
        if case .some(nil) = subnet { issues.append(ConfigIssue("clientSubnet", "\(query.clientSubnet ?? "") is not an IPv4 prefix", hint: "for example 10.10.1.0/24")) }
        if let zone = query.zone, zone.isEmpty || zone.utf8.count > 63 {
            issues.append(ConfigIssue("zone", "\(zone.debugDescription) is not a zone name", hint: "a zone of the VPC, for example eu-central-1a"))
        }
        guard issues.isEmpty, let name, let type else { throw .invalid(issues: issues) }
        return ExplainQuestion(
            name: name, type: type, vpc: query.vpc, listenerZone: query.zone, source: source ?? nil, clientSubnet: subnet ?? nil)
    }
}

extension Components.Schemas.DNSExplanation {
    init(_ e: Explanation) {
        self.init(
            name: e.name, _type: e._typeText, vpc: e.vpc ?? "", source: e.source, listenerZone: e.listenerZone, clientSubnet: e.clientSubnet,
            view: e.view, viewNote: e.viewNote, clientZone: e.clientZone,
            clientZoneFoundBy: .init(rawValue: e.clientZoneFoundBy) ?? .unknown, forwarded: e.forwarded, zone: e.zone,
            serial: e.serial.map(Int64.init),
            candidates: e.candidates.map {
                .init(name: $0.name, eni: $0.eni, endpoint: $0.endpoint, zone: $0.zone, address: $0.address, healthy: $0.healthy, shiftedAway: $0.shiftedAway, kept: $0.kept,
                      reason: $0.reason)
            },
            rcode: e.rcode, authoritative: e.authoritative, answer: e.answer, authority: e.authority, additional: e.additional)
    }
}

extension Explanation {
    fileprivate var _typeText: String { type }
}

// MARK: - zonelink dns

struct DNSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns", abstract: "Questions about DNS answers.", subcommands: [Explain.self])

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Explain the answer a question gets: view, zone, the client's zone, every candidate ENI and the answer sent.")

        @OptionGroup var output: ControlOutput

        @Argument(help: "The question name.")
        var name: String

        @Option(name: .long, help: "The question type (default A).")
        var type: String = "A"

        @Option(name: .long, help: "Ask as a client of this VPC's listeners.")
        var vpc: String

        @Option(name: .long, help: "The client's source address (its vSwitch gives its zone).")
        var source: String?

        @Option(name: .long, help: "Ask as a listener whose clients are in this zone (instead of --source).")
        var zone: String?

        @Option(name: .customLong("client-subnet"), help: ArgumentHelp("An EDNS Client Subnet the query carries (from a trusted forwarder's --source).", valueName: "PREFIX"))
        var clientSubnet: String?

        func validate() throws {
            if source != nil && zone != nil { throw ValidationError("give --source or --zone, not both: a listener's zone overrides the source's") }
        }

        func run() async throws {
            let query = Operations.ExplainDNS.Input.Query(name: name, _type: type, vpc: vpc, source: source, zone: zone, clientSubnet: clientSubnet)
            try await output.present({ try await $0.explainDNS(query: query).ok.body.json }, Self.show)
        }

        static func show(_ e: Components.Schemas.DNSExplanation) {
            var fields: [(String, String)] = [("question", "\(e.name) \(e._type)")]
            fields.append(("view", e.view.map { "VPC \($0)" } ?? "clients of no VPC"))
            fields.append(("", e.viewNote))
            let how: String = switch e.clientZoneFoundBy {
            case .listener: "the listener's zone"
            case .vswitch: "the vSwitch holding the source \(e.source ?? "")"
            case .clientSubnet: "the client subnet \(e.clientSubnet ?? "") of a trusted forwarder"
            case .unknown: "no zone: no listener zone, source in no vSwitch of the VPC, no trusted client subnet"
            }
            fields.append(("client zone", (e.clientZone ?? "unknown") + " (" + how + ")"))
            if e.forwarded {
                fields.append(("zone", "none served: forwarded to dns.upstreams"))
            } else {
                fields.append(("zone", e.zone ?? "none in this view: REFUSED"))
                if let serial = e.serial { fields.append(("serial", String(serial))) }
                fields.append(("rcode", e.rcode ?? ""))
            }
            printControlFields(fields)
            if !e.candidates.isEmpty {
                print()
                printControlTable(
                    ["ENI", "ZONE", "ADDRESS", "HEALTHY", "SHIFTED AWAY", "ANSWERED", "WHY"],
                    e.candidates.map { [$0.eni, $0.zone, $0.address, yesNo($0.healthy), yesNo($0.shiftedAway), yesNo($0.kept), $0.reason] })
            }
            for (title, lines) in [("ANSWER", e.answer), ("AUTHORITY", e.authority), ("ADDITIONAL", e.additional)] where !lines.isEmpty {
                print()
                print(";; \(title)")
                lines.forEach { print($0) }
            }
        }
    }
}
