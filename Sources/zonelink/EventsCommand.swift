// `zonelink events [--follow]`: the control plane's events (GET /v1/events), the recent ones,
// or as they happen over server-sent events.
import ArgumentParser
import Foundation
import OpenAPIRuntime
import ZoneLinkAPI

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Connection changes, health transitions, zonal shifts, reloads and refusals this token may see.")

    @OptionGroup var api: APIOptions

    @Flag(help: "Keep listening: print each event as it happens (until interrupted).")
    var follow = false

    @Option(help: "Only events after this sequence number.")
    var after: Int64?

    @Flag(help: "Print each event as a JSON object, one a line.")
    var json = false

    func run() async throws {
        var last = after
        guard follow else {
            let events = try await api.call {
                try await $0.listEvents(query: .init(after: last), headers: .init(accept: [.init(contentType: .json)])).ok.body.json
            }
            for event in events { try show(event) }
            return
        }
        while true {
            let ended: Bool = try await api.call { client in
                let body = try await client.listEvents(
                    query: .init(after: last), headers: .init(accept: [.init(contentType: .textEventStream)])
                ).ok.body.textEventStream
                for try await event in Self.events(in: body) {
                    last = event.sequence
                    try show(event)
                }
                return true
            }
            // The server ended the stream (it dropped us for falling behind, or is stopping):
            // resume after the last event seen.
            if ended {
                FileHandle.standardError.write(Data("zonelink: the event stream ended; resuming after \(last.map(String.init) ?? "the start")\n".utf8))
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    func show(_ event: Components.Schemas.Event) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(event) + Data("\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data("\(event.time)  #\(event.sequence)  \(event.kind.rawValue)  \(event.subject)  \(event.message)\n".utf8))
        }
    }

    /// The events of a server-sent events body: `data:` lines up to a blank line make one.
    static func events(in body: HTTPBody) -> AsyncThrowingStream<Components.Schemas.Event, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var line: [UInt8] = []
                    var data: [UInt8] = []
                    let decoder = JSONDecoder()
                    for try await chunk in body {
                        for byte in chunk {
                            guard byte == UInt8(ascii: "\n") else {
                                line.append(byte)
                                continue
                            }
                            if line.isEmpty {
                                if !data.isEmpty { continuation.yield(try decoder.decode(Components.Schemas.Event.self, from: Data(data))) }
                                data.removeAll()
                            } else if line.starts(with: Array("data:".utf8)) {
                                data += line.dropFirst(5).drop { $0 == UInt8(ascii: " ") }
                            }
                            line.removeAll()
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
