// Real DNS clients (dig, kdig, drill) run as processes, and a parser of their common
// presentation output (header line, flags line, sections).
import Foundation

enum Transport: String, CaseIterable, Sendable, CustomStringConvertible {
    case udp, tcp
    var description: String { rawValue }
}

enum ClientTool: String, Sendable {
    case dig, kdig, drill
    var path: String? {
        switch self {
        case .dig: Tools.dig
        case .kdig: Tools.kdig
        case .drill: Tools.drill
        }
    }
}

/// What a client printed, parsed.
struct ClientAnswer: Sendable {
    var rcode: String = ""
    var flags: Set<String> = []
    var question: [String] = []
    var answer: [RR] = []
    var authority: [RR] = []
    var additional: [RR] = []

    var aa: Bool { flags.contains("aa") }
    var tc: Bool { flags.contains("tc") }
    func answerData(_ type: String) -> [String] { answer.filter { $0.type == type }.map(\.rdata).sorted() }

    /// Parses dig, kdig and drill output; nil when no response header was printed.
    static func parse(_ output: String) -> ClientAnswer? {
        var result = ClientAnswer()
        var sawHeader = false
        enum Section { case none, question, answer, authority, additional }
        var section = Section.none
        for rawLine in output.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.contains("->>HEADER<<-") {
                if sawHeader { break }  // a second message (e.g. a retry): keep the first
                sawHeader = true
                for key in ["status: ", "rcode: "] {
                    if let r = line.range(of: key) {
                        result.rcode = String(line[r.upperBound...].prefix { $0.isLetter || $0.isNumber })
                    }
                }
                continue
            }
            let lower = line.lowercased()
            if lower.hasPrefix(";; flags:") {
                let rest = line.dropFirst(";; flags:".count)
                let flagText = rest.prefix { $0 != ";" }
                result.flags = Set(flagText.split(separator: " ").map { $0.lowercased() })
                continue
            }
            if line.hasPrefix(";;") && lower.hasSuffix("section:") {
                if lower.contains("question") { section = .question }
                else if lower.contains("answer") { section = .answer }
                else if lower.contains("authority") { section = .authority }
                else if lower.contains("additional") { section = .additional }
                else { section = .none }  // OPT / EDNS pseudosection
                continue
            }
            if section == .question && line.hasPrefix(";") {
                result.question.append(line.drop { $0 == ";" || $0 == " " }.description)
                continue
            }
            if line.hasPrefix(";") { continue }
            let rr = RR(presentation: line)
            switch section {
            case .answer: result.answer.append(rr)
            case .authority: result.authority.append(rr)
            case .additional: result.additional.append(rr)
            default: break
            }
        }
        return sawHeader ? result : nil
    }
}

/// Runs one client query against 127.0.0.1:port.
func runClient(_ tool: ClientTool, name: String, type: String, port: UInt16, source: String? = nil,
               transport: Transport, extra: [String] = []) async throws -> (ClientAnswer?, ProcessResult) {
    guard let path = tool.path else { throw HarnessError("\(tool.rawValue) is not installed") }
    var args: [String]
    switch tool {
    case .dig:
        args = ["@127.0.0.1", "-p", "\(port)"] + (source.map { ["-b", $0] } ?? [])
            + [name, type, "+norecurse", "+time=3", "+tries=1"] + (transport == .tcp ? ["+tcp"] : [])
    case .kdig:
        args = ["@127.0.0.1", "-p", "\(port)"] + (source.map { ["-b", $0] } ?? [])
            + [name, type, "+norecurse", "+timeout=3", "+retry=0"] + (transport == .tcp ? ["+tcp"] : [])
    case .drill:
        args = [transport == .tcp ? "-t" : "-u", "-p", "\(port)"] + (source.map { ["-I", $0] } ?? [])
            + [name, "@127.0.0.1", type]
    }
    args += extra
    let result = try await runProcess(path, args, timeout: 20)
    return (ClientAnswer.parse(result.stdout), result)
}
