import ZoneLinkCore

/// Why a flow left the NAT table, as the attribution log says it.
public enum FlowCloseReason: String, Sendable, Codable {
    /// Both sides finished, one reset, or the gateway closed it (endpoint gone, shutdown).
    case ended
    /// Refused after its NAT port was taken (the target could not be reached).
    case refused
    /// Idle past its protocol's timeout (`gateway.tcpIdleTimeout`, `udpIdleTimeout`).
    case idle
    /// The NAT port was in use on the provider side; the flow went on from the next port.
    case natPortInUse
}

/// One line of the attribution log: a flow opened, a flow closed (with what it moved), the
/// server started (flows open before it ended then), or records lost to a full queue.
///
/// Both records of a flow carry everything that identifies it, and the same `opened`, so a
/// close whose open was rotated away still tells the whole story.
public struct AttributionRecord: Codable, Sendable, Equatable {
    public enum Event: String, Codable, Sendable {
        case open, close, start, dropped
    }

    public var event: Event
    /// When it happened (RFC 3339, UTC).
    public var time: String
    /// When the flow opened (open and close records).
    public var opened: String?
    public var proto: String?
    /// The consumer account, VPC, client and ENI (address:port).
    public var account: String?
    public var vpc: String?
    public var client: String?
    public var eni: String?
    public var endpoint: String?
    /// The provider side: its VPC, the NAT address:port the flow left from, the load
    /// balancer and the target (backend or external load balancer) address:port.
    public var providerVPC: String?
    public var nat: String?
    public var loadBalancer: String?
    public var backend: String?
    public var bytesFromClient: Int?
    public var bytesFromTarget: Int?
    public var reason: FlowCloseReason?
    /// For `dropped`: how many records were lost.
    public var count: Int?

    public init(event: Event, time: String) {
        self.event = event
        self.time = time
    }

    /// The record of `flow` opening (`event` .open) or closing, `opened` and `time` already
    /// in RFC 3339.
    public init(_ event: Event, _ flow: Flow, opened: String, time: String, reason: FlowCloseReason? = nil) {
        self.event = event
        self.time = time
        self.opened = opened
        self.proto = flow.key.proto.rawValue
        self.account = flow.account
        self.vpc = flow.key.vpc
        self.client = flow.key.client.description
        self.eni = flow.key.eni.description
        self.endpoint = flow.endpoint
        self.providerVPC = flow.binding.providerVPC
        self.nat = flow.binding.nat.description
        self.loadBalancer = flow.loadBalancer
        self.backend = flow.binding.target.description
        if event == .close {
            self.bytesFromClient = flow.bytesFromClient
            self.bytesFromTarget = flow.bytesFromTarget
            self.reason = reason
        }
    }

    /// The record as one JSON object on one line, keys in a fixed order. Written by hand: the
    /// writer formats every flow twice, and a generic encoder would cost more than the flow.
    public var jsonLine: String {
        var line = "{\"event\":\"\(event.rawValue)\",\"time\":\(Self.quoted(time))"
        func add(_ key: String, _ value: String?) {
            if let value { line += ",\"\(key)\":" + Self.quoted(value) }
        }
        func add(_ key: String, _ value: Int?) {
            if let value { line += ",\"\(key)\":\(value)" }
        }
        add("opened", opened)
        add("proto", proto)
        add("account", account)
        add("vpc", vpc)
        add("client", client)
        add("eni", eni)
        add("endpoint", endpoint)
        add("providerVPC", providerVPC)
        add("nat", nat)
        add("loadBalancer", loadBalancer)
        add("backend", backend)
        add("bytesFromClient", bytesFromClient)
        add("bytesFromTarget", bytesFromTarget)
        add("reason", reason?.rawValue)
        add("count", count)
        return line + "}\n"
    }

    /// A JSON string: quotes, backslashes and control characters escaped (RFC 8259 section 7).
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Who held which NAT port when: the attribution log's records paired into flows, and the
/// questions `zonelink nat history` asks of them. Pure: records and times in, flows out.
public struct NATHistory: Sendable {
    /// A flow as the log knows it: its open, and its close when one was recorded.
    public struct AttributedFlow: Sendable, Equatable {
        /// The open record, or the close record when the open was rotated away.
        public var record: AttributionRecord
        public var opened: Int64
        /// Nanoseconds since the epoch; nil while open (or when the server was killed and has
        /// not started since).
        public var closed: Int64?
        public var close: AttributionRecord?
        /// True when the server stopped with the flow open: `closed` is the next start.
        public var endedByRestart = false
    }

    public private(set) var flows: [AttributedFlow] = []
    /// Records the writer reported lost (`dropped` lines): answers may miss flows then.
    public private(set) var dropped = 0
    /// Lines that were not records (a torn last line after a kill, say).
    public private(set) var unreadable = 0

    private struct Identity: Hashable {
        var opened: String
        var proto: String?
        var vpc: String?
        var client: String?
        var eni: String?
        var nat: String?
        var providerVPC: String?
    }

    /// Pairs `records` (oldest first, as the files hold them; `unreadable` counted by the
    /// caller's parse) into flows.
    public init(records: [AttributionRecord], unreadable: Int = 0) {
        self.unreadable = unreadable
        var open: [Identity: Int] = [:]
        for record in records {
            switch record.event {
            case .dropped:
                dropped += record.count ?? 0
            case .start:
                // The server (re)started: every flow still open ended when it stopped.
                guard let time = RFC3339.parse(record.time) else { continue }
                for index in open.values {
                    flows[index].closed = time
                    flows[index].endedByRestart = true
                }
                open.removeAll()
            case .open:
                guard let opened = record.opened.flatMap({ RFC3339.parse($0) }) else { continue }
                open[Self.identity(record)] = flows.count
                flows.append(AttributedFlow(record: record, opened: opened))
            case .close:
                guard let opened = record.opened.flatMap({ RFC3339.parse($0) }) else { continue }
                let closed = RFC3339.parse(record.time)
                if let index = open.removeValue(forKey: Self.identity(record)) {
                    flows[index].closed = closed
                    flows[index].close = record
                } else {
                    flows.append(AttributedFlow(record: record, opened: opened, closed: closed, close: record))
                }
            }
        }
    }

    private static func identity(_ record: AttributionRecord) -> Identity {
        Identity(
            opened: record.opened ?? "", proto: record.proto, vpc: record.vpc, client: record.client, eni: record.eni, nat: record.nat,
            providerVPC: record.providerVPC)
    }

    /// What to look for: a NAT address (and port), held at `at`, opened since `since`, of an
    /// endpoint or a consumer VPC.
    public struct Question: Sendable {
        public var nat: IPv4Address
        public var port: UInt16?
        public var at: Int64?
        public var since: Int64?
        public var endpoint: String?
        public var vpc: String?

        public init(nat: IPv4Address, port: UInt16? = nil, at: Int64? = nil, since: Int64? = nil, endpoint: String? = nil, vpc: String? = nil) {
            self.nat = nat
            self.port = port
            self.at = at
            self.since = since
            self.endpoint = endpoint
            self.vpc = vpc
        }
    }

    /// The flows that answer `question`, oldest first. A flow holds its port from its open to
    /// its close, both included; one with no close holds it still.
    public func answer(_ question: Question) -> [AttributedFlow] {
        flows.filter { flow in
            guard let nat = flow.record.nat.flatMap({ IPv4Endpoint($0) }), nat.address == question.nat else { return false }
            if let port = question.port, nat.port != port { return false }
            if let at = question.at, flow.opened > at || (flow.closed.map { $0 < at } ?? false) { return false }
            if let since = question.since, (flow.closed ?? .max) < since { return false }
            if let endpoint = question.endpoint, flow.record.endpoint != endpoint { return false }
            if let vpc = question.vpc, flow.record.vpc != vpc { return false }
            return true
        }
    }
}

/// Writes attribution lines as bytes, the same JSON as `AttributionRecord.jsonLine`, straight
/// from a `Flow`: the writer thread formats every flow twice, and building the record's
/// strings first cost more than the flow itself. A flow's identity (protocol to backend) is
/// encoded once, at its open, and reused by its close; times are cached per second.
public struct AttributionEncoder {
    private var second: Int64 = .min
    private var secondText: [UInt8] = []

    public init() {}

    /// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` of `nanoseconds` since the epoch.
    public mutating func time(_ nanoseconds: Int64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(27)
        appendTime(nanoseconds, to: &out)
        return out
    }

    public mutating func appendTime(_ nanoseconds: Int64, to line: inout [UInt8]) {
        let seconds = nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000
        if seconds != second {
            second = seconds
            secondText = Array(RFC3339.format(nanoseconds: seconds * 1_000_000_000).utf8.prefix(20))  // through the "."
        }
        line.append(contentsOf: secondText)
        let micros = Int((nanoseconds - seconds * 1_000_000_000) / 1_000)
        var divisor = 100_000
        while divisor > 0 {
            line.append(UInt8(truncatingIfNeeded: 48 + micros / divisor % 10))
            divisor /= 10
        }
        line.append(UInt8(ascii: "Z"))
    }

    /// `,"proto":…` through `"backend":"…"`: what both records of a flow share.
    public func identity(_ flow: Flow) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(320)
        Self.field(Self.protoKey, flow.key.proto.rawValue, to: &line)
        Self.field(Self.accountKey, flow.account, to: &line)
        Self.field(Self.vpcKey, flow.key.vpc, to: &line)
        Self.endpoint(Self.clientKey, flow.key.client, to: &line)
        Self.endpoint(Self.eniKey, flow.key.eni, to: &line)
        Self.field(Self.endpointKey, flow.endpoint, to: &line)
        Self.field(Self.providerVPCKey, flow.binding.providerVPC, to: &line)
        Self.endpoint(Self.natKey, flow.binding.nat, to: &line)
        Self.field(Self.loadBalancerKey, flow.loadBalancer, to: &line)
        Self.endpoint(Self.backendKey, flow.binding.target, to: &line)
        return line
    }

    /// Appends the line of `flow` opening or closing to `line`.
    public func append(
        _ event: AttributionRecord.Event, _ flow: Flow, opened: [UInt8], time: [UInt8], reason: FlowCloseReason?, to line: inout [UInt8]
    ) {
        line.append(contentsOf: event == .open ? Self.openPrefix : Self.closePrefix)
        line.append(contentsOf: time)
        finish(event, flow, opened: opened, identity: identity(flow), reason: reason, to: &line)
    }

    /// The rest of a line after its time: `opened`, the identity, and for a close its counts.
    public func finish(
        _ event: AttributionRecord.Event, _ flow: Flow, opened: [UInt8], identity: [UInt8], reason: FlowCloseReason?, to line: inout [UInt8]
    ) {
        line.append(contentsOf: Self.openedKey)
        line.append(contentsOf: opened)
        line.append(UInt8(ascii: "\""))
        line.append(contentsOf: identity)
        if event == .close {
            line.append(contentsOf: Self.bytesFromClientKey)
            Self.number(flow.bytesFromClient, to: &line)
            line.append(contentsOf: Self.bytesFromTargetKey)
            Self.number(flow.bytesFromTarget, to: &line)
            if let reason { Self.field(Self.reasonKey, reason.rawValue, to: &line) }
        }
        line.append(UInt8(ascii: "}"))
        line.append(UInt8(ascii: "\n"))
    }

    static let openPrefix = Array(#"{"event":"open","time":""#.utf8)
    static let closePrefix = Array(#"{"event":"close","time":""#.utf8)
    static let openedKey = Array(#"","opened":""#.utf8)
    static let protoKey = Array(#","proto":"#.utf8)
    static let accountKey = Array(#","account":"#.utf8)
    static let vpcKey = Array(#","vpc":"#.utf8)
    static let clientKey = Array(#","client":""#.utf8)
    static let eniKey = Array(#","eni":""#.utf8)
    static let endpointKey = Array(#","endpoint":"#.utf8)
    static let providerVPCKey = Array(#","providerVPC":"#.utf8)
    static let natKey = Array(#","nat":""#.utf8)
    static let loadBalancerKey = Array(#","loadBalancer":"#.utf8)
    static let backendKey = Array(#","backend":""#.utf8)
    static let bytesFromClientKey = Array(#","bytesFromClient":"#.utf8)
    static let bytesFromTargetKey = Array(#","bytesFromTarget":"#.utf8)
    static let reasonKey = Array(#","reason":"#.utf8)

    private static func field(_ key: [UInt8], _ value: String, to line: inout [UInt8]) {
        line.append(contentsOf: key)
        // IDs are labels; anything else goes through the general escaping.
        var value = value
        let plain = value.withUTF8 { bytes in
            bytes.allSatisfy { $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }
        }
        if plain {
            line.append(UInt8(ascii: "\""))
            value.withUTF8 { line.append(contentsOf: $0) }
            line.append(UInt8(ascii: "\""))
        } else {
            line.append(contentsOf: AttributionRecord.quoted(value).utf8)
        }
    }

    private static func endpoint(_ key: [UInt8], _ value: IPv4Endpoint, to line: inout [UInt8]) {
        line.append(contentsOf: key)
        let o = value.address.octets
        number(Int(o.0), to: &line)
        line.append(UInt8(ascii: "."))
        number(Int(o.1), to: &line)
        line.append(UInt8(ascii: "."))
        number(Int(o.2), to: &line)
        line.append(UInt8(ascii: "."))
        number(Int(o.3), to: &line)
        line.append(UInt8(ascii: ":"))
        number(Int(value.port), to: &line)
        line.append(UInt8(ascii: "\""))
    }

    private static func number(_ value: Int, to line: inout [UInt8]) {
        var value = value
        if value < 0 {
            line.append(UInt8(ascii: "-"))
            value = -value
        }
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        while divisor > 0 {
            line.append(UInt8(truncatingIfNeeded: 48 + value / divisor % 10))
            divisor /= 10
        }
    }
}
