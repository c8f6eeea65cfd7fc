// `zonelink nat history`: who held a NAT address and port, from the attribution log in the
// state directory (`AttributionLog`). It reads the files, not the API, so it answers while the
// server is stopped and after a crash; the files are the operator's (mode 0600).
import ArgumentParser
import Foundation
import ZoneLinkCore
import ZoneLinkGateway

struct NATHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Who held a NAT address (and port) at a time: flows from the attribution log of a state directory.")

    @Option(name: .customLong("state-dir"), help: "The state directory of `zonelink serve` (its attribution.log*).")
    var stateDir = ".zonelink"

    @Option(name: .long, help: ArgumentHelp("The NAT address, with or without a port.", valueName: "ADDRESS[:PORT]"))
    var nat: String

    @Option(name: .long, help: ArgumentHelp("Flows holding it at this time (RFC 3339, e.g. 2026-12-01T14:02:00Z).", valueName: "TIME"))
    var at: String?

    @Option(name: .long, help: ArgumentHelp("Flows open at or after this time (RFC 3339).", valueName: "TIME"))
    var since: String?

    @Option(name: .long, help: "Only flows of this endpoint.")
    var endpoint: String?

    @Option(name: .long, help: "Only flows from this consumer VPC.")
    var vpc: String?

    @Flag(help: "Print each flow as a JSON object (one per line: its open and close records).")
    var json = false

    func question() throws -> NATHistory.Question {
        let address: IPv4Address
        var port: UInt16?
        if let endpoint = IPv4Endpoint(nat) {
            address = endpoint.address
            port = endpoint.port
        } else if let plain = IPv4Address(nat) {
            address = plain
        } else {
            throw ValidationError("--nat \(nat) is not ADDRESS or ADDRESS:PORT (for example 10.77.8.240:40123)")
        }
        func time(_ text: String?, _ option: String) throws -> Int64? {
            guard let text else { return nil }
            guard let value = RFC3339.parse(text) else {
                throw ValidationError("\(option) \(text) is not an RFC 3339 time (for example 2026-12-01T14:02:00Z or 2026-12-01T16:02:00+02:00)")
            }
            return value
        }
        return NATHistory.Question(
            nat: address, port: port, at: try time(at, "--at"), since: try time(since, "--since"), endpoint: endpoint, vpc: vpc)
    }

    func validate() throws { _ = try question() }

    func run() throws {
        let question = try question()
        let (records, unreadable) = try Self.readLog(stateDir: stateDir)
        let history = NATHistory(records: records, unreadable: unreadable)
        let flows = history.answer(question)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for flow in flows {
                struct Shown: Encodable {
                    var open: AttributionRecord
                    var close: AttributionRecord?
                    var endedByRestart: Bool
                }
                let data = try encoder.encode(Shown(open: flow.record, close: flow.close, endedByRestart: flow.endedByRestart))
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            }
        } else {
            printControlTable(
                ["OPENED", "CLOSED", "NAT", "ACCOUNT", "VPC", "CLIENT", "ENDPOINT", "ENI", "BACKEND", "BYTES IN", "BYTES OUT", "REASON"],
                flows.map { flow in
                    let r = flow.record
                    let closed = flow.closed.map { RFC3339.format(nanoseconds: $0) } ?? "open"
                    let reason = flow.close?.reason?.rawValue ?? (flow.endedByRestart ? "server stopped" : "")
                    return [r.opened ?? "", closed, r.nat ?? "", r.account ?? "", r.vpc ?? "", r.client ?? "", r.endpoint ?? "", r.eni ?? "",
                            r.backend ?? "", flow.close?.bytesFromClient.map(String.init) ?? "", flow.close?.bytesFromTarget.map(String.init) ?? "", reason]
                })
        }
        if history.dropped > 0 {
            FileHandle.standardError.write(Data("zonelink: the log says \(history.dropped) records were dropped (the writer fell behind): flows may be missing\n".utf8))
        }
        if flows.isEmpty {
            FileHandle.standardError.write(Data("zonelink: no flow in \(stateDir)/\(AttributionLog.fileName)* matches\n".utf8))
        }
    }

    /// The records of every file, oldest first (`attribution.log.N` … `.1`, then the current),
    /// and how many lines could not be read (a torn last line after a kill).
    static func readLog(stateDir: String) throws -> ([AttributionRecord], Int) {
        let base = "\(stateDir)/\(AttributionLog.fileName)"
        let manager = FileManager.default
        var rotated: [Int] = []
        for name in (try? manager.contentsOfDirectory(atPath: stateDir)) ?? [] where name.hasPrefix(AttributionLog.fileName + ".") {
            if let index = Int(name.dropFirst(AttributionLog.fileName.count + 1)) { rotated.append(index) }
        }
        let paths = rotated.sorted(by: >).map { "\(base).\($0)" } + [base]
        guard paths.contains(where: { manager.fileExists(atPath: $0) }) else {
            FileHandle.standardError.write(Data("zonelink: no attribution log in \(stateDir) (is it the state directory of `zonelink serve`?)\n".utf8))
            throw ExitStatus.invalidInput
        }
        let decoder = JSONDecoder()
        var records: [AttributionRecord] = []
        var unreadable = 0
        for path in paths {
            guard let data = manager.contents(atPath: path) else {
                if manager.fileExists(atPath: path) {
                    FileHandle.standardError.write(Data("zonelink: cannot read \(path) (the log is the operator's: run as the user of the service)\n".utf8))
                    throw ExitStatus.runtimeFailure
                }
                continue
            }
            for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                if let record = try? decoder.decode(AttributionRecord.self, from: Data(line)) {
                    records.append(record)
                } else {
                    unreadable += 1
                }
            }
        }
        return (records, unreadable)
    }
}
