// Issue 8: real secondaries (NSD and Knot) carry a view of a running zonelink by AXFR with
// TSIG, then answer every generated name as zonelink answers that view's clients.
import Foundation
import ZoneLinkTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Tools {
    static let knotd = find("knotd")
}

/// Two secondaries of the view "VPC 1 in zone b", the view of zonelink's pinned listener
/// (`dns.listen[0]`), each with its own key.
enum SecondaryFixture {
    static let nsdSecret = Data("nsd-secondary-secret-32-bytes!!!".utf8).base64EncodedString()
    static let knotSecret = Data("knot-secondary-secret-32-bytes!!".utf8).base64EncodedString()

    /// zones/local.yaml with `dns.secondaries`: NSD's key inline, Knot's in a secret file.
    static func config(knotSecretFile: String, notify: [UInt16]) throws -> TestConfig {
        try TestConfig.local { yaml in
            yaml.replacingOccurrences(of: "  zoneFiles: [", with: """
                  secondaries:
                    - name: nsd-zone-b
                      key: {name: nsd.key, algorithm: hmac-sha256, secret: "\(nsdSecret)"}
                      vpc: vpc-1
                      zone: eu-central-1b
                      notify: ["127.0.0.1:\(notify[0])"]
                      allowFrom: [127.0.0.1]
                    - name: knot-zone-b
                      key: {name: knot.key, algorithm: hmac-sha256, secretFile: \(knotSecretFile)}
                      vpc: vpc-1
                      zone: eu-central-1b
                      notify: ["127.0.0.1:\(notify[1])"]
                      allowFrom: [127.0.0.0/8]
                  zoneFiles: [
                """)
        }
    }

    /// zones/local.yaml with two secondaries whose secrets are inline (for tests that only
    /// need transfers switched on, such as the fuzzing).
    static func withInlineSecondaries(_ yaml: String) -> String {
        yaml.replacingOccurrences(of: "  zoneFiles: [", with: """
              secondaries:
                - {name: nsd, key: {name: nsd.key, secret: "\(nsdSecret)"}, vpc: vpc-1, zone: eu-central-1b, allowFrom: [127.0.0.0/8]}
                - {name: knot, key: {name: knot.key, secret: "\(knotSecret)"}, vpc: vpc-1, allowFrom: [127.0.0.0/8]}
              zoneFiles: [
            """)
    }

    /// The generated names' queries of the differential corpus, and the A queries of the names
    /// zone affinity decides (which the NSD differential leaves out: here both sides apply it).
    static func queries() -> [GeneratedQuery] {
        QueryCorpus.generate(seed: DifferentialTests.seed, count: 400)
            .filter { $0.name.lowercased().hasSuffix(Names.domain) }
            + [Names.endpoint, Names.service, Names.endpointZoneA, Names.endpointZoneB].map { GeneratedQuery(name: $0, type: RRType.A) }
    }

    /// A SOA's serial: the same for a view's clients and its secondaries once both caught up,
    /// but a client may see the last serial for a moment after a change.
    static func withoutSerial(_ record: String) -> String {
        record.replacing(/(\sin\ssoa\s\S+\s\S+\s)\d+/) { "\($0.1)SERIAL" }
    }
}

/// A secondary server under test: its process, directory, port and logs.
final class SecondaryServer: @unchecked Sendable {
    let name: String
    let process: Process
    let dir: URL
    let port: UInt16
    let logs: @Sendable () -> String
    let stopper: @Sendable (Process) -> Void

    init(name: String, process: Process, dir: URL, port: UInt16, logs: @escaping @Sendable () -> String,
         stopper: @escaping @Sendable (Process) -> Void) {
        self.name = name
        self.process = process
        self.dir = dir
        self.port = port
        self.logs = logs
        self.stopper = stopper
    }

    func stop() {
        stopper(process)
        try? FileManager.default.removeItem(at: dir)
    }

    /// Waits until the secondary answers the zone's SOA with NOERROR (it has transferred it).
    func waitForZone(_ zone: String, timeout: Double = 60) throws {
        let client = try UDPClient()
        let deadline = monotonicNow() + timeout
        var id: UInt16 = 100
        while monotonicNow() < deadline {
            guard process.isRunning else { throw HarnessError("\(name) exited early:\n\(cap(logs(), 4000))") }
            id &+= 1
            if let reply = client.query(DNSQuery.build(id: id, name: zone, type: RRType.SOA), port: port, timeout: 0.3),
               let r = DNSResponse.parse(reply), r.rcode == Rcode.NOERROR, r.aa, !r.answer.isEmpty {
                return
            }
            sleepSeconds(0.1)
        }
        throw HarnessError("\(name) did not serve \(zone) within \(Int(timeout)) s:\n\(cap(logs(), 6000))")
    }

    /// The serial of the SOA the secondary serves for `zone`.
    func soaSerial(_ zone: String) throws -> UInt32? {
        let client = try UDPClient()
        guard let reply = client.query(DNSQuery.build(id: 77, name: zone, type: RRType.SOA), port: port, timeout: 2),
              let soa = DNSResponse.parse(reply)?.answer.first?.rdata
        else { return nil }
        let fields = soa.split(separator: " ")
        return fields.count >= 3 ? UInt32(fields[2]) : nil
    }

    /// Waits until the secondary answers `name` A with exactly `addresses`.
    func waitForAnswer(_ name: String, _ addresses: [String], timeout: Double, since: Double) throws {
        let client = try UDPClient()
        let deadline = since + timeout
        var id: UInt16 = 300
        var last: [String] = []
        while monotonicNow() < deadline {
            id &+= 1
            if let reply = client.query(DNSQuery.build(id: id, name: name, type: RRType.A), port: port, timeout: 0.3),
               let r = DNSResponse.parse(reply) {
                last = r.answer.map(\.rdata).sorted()
                if last == addresses.sorted() { return }
            }
            sleepSeconds(0.05)
        }
        throw HarnessError("\(name) on \(self.name) is still \(last), not \(addresses), \(Int(timeout)) s after the change:\n\(cap(logs(), 6000))")
    }

    /// NSD as the secondary of `zone` from 127.0.0.1:`primary`, TSIG key `nsd.key`.
    static func nsd(zone: String, primary: UInt16, secret: String, port: UInt16) throws -> SecondaryServer {
        guard let path = Tools.nsd else { throw HarnessError("nsd is not installed") }
        let dir = try Paths.makeTempDir("nsd-secondary")
        let conf = """
            server:
                server-count: 1
                ip-address: 127.0.0.1@\(port)
                do-ip6: no
                minimal-responses: yes
                database: ""
                zonelistfile: "\(dir.path)/zone.list"
                xfrdfile: "\(dir.path)/xfrd.state"
                xfrdir: "\(dir.path)"
                pidfile: "\(dir.path)/nsd.pid"
                logfile: "\(dir.path)/nsd.log"
                zonesdir: "\(dir.path)"
                username: ""
                chroot: ""
                verbosity: 2
                rrl-ratelimit: 0
                rrl-whitelist-ratelimit: 0
            remote-control:
                control-enable: no
            key:
                name: "nsd.key"
                algorithm: hmac-sha256
                secret: "\(secret)"
            zone:
                name: "\(zone)"
                zonefile: "\(dir.path)/\(zone).zone"
                request-xfr: AXFR 127.0.0.1@\(primary) nsd.key
                allow-notify: 127.0.0.1 nsd.key

            """
        let confURL = dir.appendingPathComponent("nsd.conf")
        try conf.write(to: confURL, atomically: true, encoding: .utf8)
        let process = try launch(path, ["-d", "-c", confURL.path], in: dir)
        return SecondaryServer(name: "nsd", process: process, dir: dir, port: port, logs: { NSD.logs(in: dir) }, stopper: { NSD.stop($0) })
    }

    /// Knot as the secondary of `zone` from 127.0.0.1:`primary`, TSIG key `knot.key`.
    /// With `catalog`, Knot consumes zonelink's catalog zone (RFC 9432) instead of naming `zone`:
    /// it serves whatever member zones the catalog lists.
    static func knot(zone: String, primary: UInt16, secret: String, port: UInt16, catalog: Bool = false) throws -> SecondaryServer {
        guard let path = Tools.knotd else { throw HarnessError("knotd is not installed") }
        let dir = try Paths.makeTempDir("knot-secondary")
        let conf = """
            server:
                rundir: "\(dir.path)"
                pidfile: "\(dir.path)/knot.pid"
                listen: 127.0.0.1@\(port)
            database:
                storage: "\(dir.path)"
            control:
                listen: "\(dir.path)/knot.sock"
            log:
              - target: stderr
                any: info
            key:
              - id: knot.key
                algorithm: hmac-sha256
                secret: \(secret)
            remote:
              - id: zonelink
                address: 127.0.0.1@\(primary)
                key: knot.key
            acl:
              - id: notify-from-zonelink
                address: 127.0.0.1
                key: knot.key
                action: notify
            template:
              - id: member
                storage: "\(dir.path)"
                master: zonelink
                acl: notify-from-zonelink
            zone:
              - domain: \(catalog ? "catalog.zonelink.invalid" : zone)
                storage: "\(dir.path)"
                master: zonelink
                acl: notify-from-zonelink
            \(catalog ? "    catalog-role: interpret\n    catalog-template: member\n" : "")
            """
        let confURL = dir.appendingPathComponent("knot.conf")
        try conf.write(to: confURL, atomically: true, encoding: .utf8)
        let process = try launch(path, ["-c", confURL.path], in: dir)
        let output = dir.appendingPathComponent("output")
        return SecondaryServer(
            name: "knotd", process: process, dir: dir, port: port,
            logs: { (try? String(contentsOf: output, encoding: .utf8)) ?? "" },
            stopper: { process in
                if process.isRunning { kill(process.processIdentifier, SIGTERM) }
                if !waitForExit(process, timeout: 10) { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            })
    }

    private static func launch(_ path: String, _ arguments: [String], in dir: URL) throws -> Process {
        let output = dir.appendingPathComponent("output")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: output)
        try launchProcess(process)
        return process
    }
}

@Suite("Secondaries carry a view (issue 8)", .timeLimit(.minutes(5)))
struct SecondaryTests {
    @Test("NSD and Knot transfer VPC 1's zone-b view with TSIG and answer as zonelink does",
          .enabled(if: Tools.nsd != nil, "nsd is not installed: apt-get install nsd"),
          .enabled(if: Tools.knotd != nil, "knotd is not installed: apt-get install knot"))
    func nsdAndKnotCarryTheView() async throws {
        let secretDir = try Paths.makeTempDir("tsig")
        defer { try? FileManager.default.removeItem(at: secretDir) }
        let secretFile = secretDir.appendingPathComponent("knot.key")
        try (SecondaryFixture.knotSecret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        // The secondaries' ports first: zonelink notifies them there.
        let secondaryPorts = [try LoopbackPorts.free(), try LoopbackPorts.free()]
        let config = try SecondaryFixture.config(knotSecretFile: secretFile.path, notify: secondaryPorts)
        let server = try ZoneLinkServer.launch(config, tag: "xfr")
        var secondaries: [SecondaryServer] = []
        do {
            try await offload { try server.waitUntilReady() }
            secondaries.append(try SecondaryServer.nsd(
                zone: Names.domain, primary: server.pinnedPort, secret: SecondaryFixture.nsdSecret, port: secondaryPorts[0]))
            secondaries.append(try SecondaryServer.knot(
                zone: Names.domain, primary: server.pinnedPort, secret: SecondaryFixture.knotSecret, port: secondaryPorts[1]))
            let started = monotonicNow()
            for secondary in secondaries {
                try await offload { try secondary.waitForZone(Names.domain) }
            }
            let transferred = monotonicNow() - started
            print("secondaries: both carried \(Names.domain) within \(String(format: "%.2f", transferred)) s of starting")
            let queries = SecondaryFixture.queries()
            for secondary in secondaries {
                let result = try await offload {
                    try QueryCorpus.compare(queries, portA: server.pinnedPort, labelA: "zonelink", portB: secondary.port,
                                            labelB: secondary.name, normalise: SecondaryFixture.withoutSerial)
                }
                #expect(result.compared >= 100)
                #expect(result.mismatches.isEmpty,
                        "\(secondary.name): \(result.mismatches.count) of \(result.compared) differ:\n\(cap(result.mismatches.prefix(6).joined(separator: "\n\n"), 10_000))\n\(secondary.name) log:\n\(cap(secondary.logs(), 3000))")
            }
            // Zone affinity made it across: the zone-b view holds the zone-b ENI only.
            let client = try UDPClient()
            for secondary in secondaries {
                let reply = try #require(client.query(DNSQuery.build(id: 9, name: Names.endpoint, type: RRType.A), port: secondary.port, timeout: 2))
                let addresses = try #require(DNSResponse.parse(reply)).answer.map(\.rdata)
                #expect(addresses == [Names.eniB], "\(secondary.name): \(addresses)")
            }

            // A change (the zone-b ENI moves) reaches both by NOTIFY, well before any refresh timer.
            try server.writeConfig(config.yaml.replacingOccurrences(of: "address: 127.10.2.50}", with: "address: 127.10.2.51}"))
            let changedAt = monotonicNow()
            server.hangUp()
            for secondary in secondaries {
                try await offload {
                    try secondary.waitForAnswer(Names.endpoint, ["127.10.2.51"], timeout: 60, since: changedAt)
                }
            }
            print("secondaries: both serve the changed ENI \(String(format: "%.2f", monotonicNow() - changedAt)) s after SIGHUP")
            #expect(server.logText.contains("NOTIFY acknowledged"), "\(server.logs)")
            // Knot asks by IXFR and gets the change alone, not the zone (its log says which).
            let knotLog = secondaries[1].logs()
            #expect(knotLog.contains("IXFR, incoming") && knotLog.contains("finished") && !knotLog.contains("fallback to AXFR"), "\(knotLog)")
            print("knotd after the change:\n" + knotLog.split(separator: "\n").filter { $0.contains("IXFR") }.joined(separator: "\n"))
        } catch {
            for secondary in secondaries { print("\(secondary.name) log:\n\(cap(secondary.logs(), 3000))") }
            secondaries.forEach { $0.stop() }
            server.kill()
            server.cleanUp()
            throw error
        }
        secondaries.forEach { $0.stop() }
        let (ended, exited, status) = try await offload { server.terminate() }
        #expect(ended && exited && status == 0, "zonelink serve did not stop cleanly.\n\(server.logs)")
        server.cleanUp()
    }

    @Test("Changes through the control API (endpoint create, accept, delete) reach NSD and Knot by NOTIFY",
          .enabled(if: Tools.nsd != nil, "nsd is not installed: apt-get install nsd"),
          .enabled(if: Tools.knotd != nil, "knotd is not installed: apt-get install knot"))
    func apiChangesReachBothSecondaries() async throws {
        let secretDir = try Paths.makeTempDir("tsig")
        defer { try? FileManager.default.removeItem(at: secretDir) }
        let secretFile = secretDir.appendingPathComponent("knot.key")
        try (SecondaryFixture.knotSecret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        let secondaryPorts = [try LoopbackPorts.free(), try LoopbackPorts.free()]
        let config = try SecondaryFixture.config(knotSecretFile: secretFile.path, notify: secondaryPorts)
        // zones/local.yaml's accounts A (consumer) and B (provider), with the walkthrough's tokens.
        let server = try ZoneLinkServer.launch(config, tag: "xfr-api", tokens: WalkthroughConfig.tokensFile)
        var secondaries: [SecondaryServer] = []
        defer {
            secondaries.forEach { $0.stop() }
            server.kill()
            server.cleanUp()
        }
        try await offload { try server.waitUntilReady() }
        let binary = try Paths.requireZonelink()
        func cli(_ token: String, _ args: [String]) async throws -> ProcessResult {
            let r = try await runProcess(binary.path, args + ["--state-dir", server.dir.appendingPathComponent("state").path, "--token", token],
                                         cwd: server.dir, timeout: 30)
            guard r.exited, r.status == 0 else { throw HarnessError("zonelink \(args.joined(separator: " ")) failed:\n\(r.summary)\n\(server.logs)") }
            return r
        }
        let nsd = try SecondaryServer.nsd(
            zone: Names.domain, primary: server.pinnedPort, secret: SecondaryFixture.nsdSecret, port: secondaryPorts[0])
        secondaries.append(nsd)
        let knot = try SecondaryServer.knot(
            zone: Names.domain, primary: server.pinnedPort, secret: SecondaryFixture.knotSecret, port: secondaryPorts[1])
        secondaries.append(knot)
        let both = [nsd, knot]
        for secondary in both {
            try await offload { try secondary.waitForZone(Names.domain) }
        }
        let serialBefore = try #require(try await offload { try knot.soaSerial(Names.domain) })

        /// Waits until both secondaries answer `name` A with `addresses`; the seconds it took.
        func propagation(_ name: String, _ addresses: [String], since: Double) async throws -> Double {
            for secondary in both {
                try await offload { try secondary.waitForAnswer(name, addresses, timeout: 60, since: since) }
            }
            return monotonicNow() - since
        }

        // A creates an endpoint in zone b: its names appear on both secondaries.
        var started = monotonicNow()
        let created = try await cli(WalkthroughConfig.tokenA, [
            "endpoint", "create", "--service", "epsrv-frankfurt1", "--vpc", "vpc-1", "--zone", "eu-central-1b=vsw-1b",
            "--security-group", "sg-1", "--id", "ep-api", "--json",
        ])
        let endpoint = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any], "\(created.summary)")
        let placement = try #require(endpoint["placement"] as? [String: Any], "no placement: \(endpoint)")
        let name = try #require(placement["dnsName"] as? String, "no dnsName: \(placement)")
        let address = try #require((placement["enis"] as? [[String: Any]])?.first?["address"] as? String, "no ENI: \(placement)")
        let createSeconds = try await propagation(name, [address], since: started)
        let serialCreated = try #require(try await offload { try knot.soaSerial(Names.domain) })
        #expect(serialCreated != serialBefore && serialCreated &- serialBefore < 0x8000_0000, "serial \(serialBefore) → \(serialCreated)")

        // B accepts: the names resolved while Disconnected already; both secondaries still
        // answer them (the time includes the CLI's own start, as for the other changes).
        started = monotonicNow()
        _ = try await cli(WalkthroughConfig.tokenB, ["service", "connections", "accept", "epsrv-frankfurt1", "ep-api", "--json"])
        let acceptSeconds = try await propagation(name, [address], since: started)

        // A deletes it: both secondaries stop answering its name.
        started = monotonicNow()
        _ = try await cli(WalkthroughConfig.tokenA, ["endpoint", "delete", "ep-api"])
        let deleteSeconds = try await propagation(name, [], since: started)
        let serialDeleted = try #require(try await offload { try knot.soaSerial(Names.domain) })
        #expect(serialDeleted != serialCreated && serialDeleted &- serialCreated < 0x8000_0000, "serial \(serialCreated) → \(serialDeleted)")
        #expect(server.logText.contains("NOTIFY acknowledged"), "\(server.logs)")
        print(String(format: "secondaries: API change → both NSD and Knot serve it: create %.2f s, accept %.2f s, delete %.2f s (each from the CLI's start); serial %u → %u → %u",
                     createSeconds, acceptSeconds, deleteSeconds, serialBefore, serialCreated, serialDeleted))
    }

    @Test("kdig's AXFR verifies the TSIG of every message; refusals carry the RFC's rcode",
          .enabled(if: Tools.kdig != nil, "kdig is not installed: apt-get install knot-dnsutils"))
    func kdigTransfersAndIsRefused() async throws {
        let secretDir = try Paths.makeTempDir("tsig")
        defer { try? FileManager.default.removeItem(at: secretDir) }
        let secretFile = secretDir.appendingPathComponent("knot.key")
        try (SecondaryFixture.knotSecret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        let config = try SecondaryFixture.config(knotSecretFile: secretFile.path, notify: [try LoopbackPorts.free(), try LoopbackPorts.free()])
        let server = try ZoneLinkServer.launch(config, tag: "xfr-kdig")
        defer {
            server.kill()
            server.cleanUp()
        }
        try await offload { try server.waitUntilReady() }
        let kdig = Tools.kdig!
        let port = "\(server.pinnedPort)"
        func run(_ arguments: [String]) async throws -> ProcessResult {
            try await runProcess(kdig, ["@127.0.0.1", "-p", port, "+time=5", "+retry=0"] + arguments, timeout: 30)
        }
        let good = try await run(["-y", "hmac-sha256:knot.key:\(SecondaryFixture.knotSecret)", "AXFR", Names.domain])
        #expect(good.exited && good.status == 0, "\(good.summary)")
        #expect(good.stdout.contains("Received") && !good.stdout.contains("TSIG error") && !good.stderr.contains("TSIG"), "\(good.summary)")
        // The endpoint name holds the zone-b ENI alone: affinity, as the view's clients see it.
        let endpointLines = good.stdout.split(separator: "\n").filter { $0.hasPrefix(Names.endpoint + ".") }
        #expect(endpointLines.count == 1 && endpointLines.allSatisfy { $0.hasSuffix(Names.eniB) }, "\(good.summary)")
        // `zone export --vpc --zone` prints what the secondary holds (serial aside).
        let export = try await runProcess(Paths.zonelinkBinary.path,
                                          ["zone", "export", "--config", server.configURL.path, "--vpc", "vpc-1", "--zone", "eu-central-1b"],
                                          cwd: server.dir, timeout: 30)
        func records(_ text: String) -> Set<String> {
            // Records only: not kdig's comments, nor the TSIG that signs the transfer.
            Set(text.split(separator: "\n").filter { !$0.hasPrefix(";") && !$0.isEmpty && !$0.contains("TSIG") }.map {
                SecondaryFixture.withoutSerial(" " + $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ").lowercased())
            })
        }
        #expect(export.exited && export.status == 0 && records(export.stdout) == records(good.stdout),
                "export:\n\(export.summary)\nAXFR:\n\(good.stdout)")
        // The right key for the view; the other key's secret is not it.
        let forged = try await run(["-y", "hmac-sha256:knot.key:\(SecondaryFixture.nsdSecret)", "AXFR", Names.domain])
        #expect(forged.stdout.contains("NOTAUTH") || forged.stderr.contains("BADSIG") || forged.stdout.contains("BADSIG"), "\(forged.summary)")
        let unsigned = try await run(["AXFR", Names.domain])
        #expect(unsigned.stdout.contains("REFUSED") || unsigned.stderr.contains("REFUSED"), "\(unsigned.summary)")
        let udp = try await run(["-y", "hmac-sha256:knot.key:\(SecondaryFixture.knotSecret)", "+notcp", "SOA", Names.domain])
        #expect(udp.exited && udp.status == 0 && udp.stdout.contains("NOERROR"), "signed SOA over UDP: \(udp.summary)")
        #expect(server.isRunning, "zonelink survived: \(server.logs)")
    }

    @Test("Serials never go back: after reloads, SIGTERM and kill -9, every serial (a secondary's and a plain client's) is at least the last one, and greater after a change",
          .enabled(if: Tools.kdig != nil, "kdig is not installed: apt-get install knot-dnsutils"))
    func serialsSurviveRestarts() async throws {
        let secretDir = try Paths.makeTempDir("tsig")
        defer { try? FileManager.default.removeItem(at: secretDir) }
        let secretFile = secretDir.appendingPathComponent("knot.key")
        try (SecondaryFixture.knotSecret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        let config = try SecondaryFixture.config(knotSecretFile: secretFile.path, notify: [try LoopbackPorts.free(), try LoopbackPorts.free()])
        let server = try ZoneLinkServer.launch(config, tag: "xfr-serials")
        var current: Process = server.process
        defer {
            if current.isRunning { kill(current.processIdentifier, SIGKILL); current.waitUntilExit() }
            server.kill()
            server.cleanUp()
        }
        try await offload { try server.waitUntilReady() }
        let port = server.pinnedPort

        /// The view's serial as the Knot secondary's key reads it.
        func serial() async throws -> UInt32 {
            let result = try await runProcess(Tools.kdig!, ["@127.0.0.1", "-p", "\(port)", "+time=5", "+retry=0", "+short",
                                                            "-y", "hmac-sha256:knot.key:\(SecondaryFixture.knotSecret)", "SOA", Names.domain], timeout: 30)
            let fields = result.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard result.exited, result.status == 0, fields.count >= 3, let value = UInt32(fields[2]) else {
                throw HarnessError("no signed SOA from zonelink: \(result.summary)")
            }
            return value
        }
        /// Waits until the serial differs from `old` (a reload is applied asynchronously).
        func serial(after old: UInt32) async throws -> UInt32 {
            let deadline = monotonicNow() + 30
            while monotonicNow() < deadline {
                let now = try await serial()
                if now != old { return now }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw HarnessError("the serial stayed \(old) for 30 s after a change.\n\(server.logs)")
        }
        /// Writes the config with the zone-b ENI at `address` and reloads.
        func move(to address: String) throws {
            try server.writeConfig(config.yaml.replacingOccurrences(of: "address: 127.10.2.50}", with: "address: \(address)}"))
            kill(current.processIdentifier, SIGHUP)
        }
        /// Starts zonelink again on the same config and state directory.
        func restart() async throws {
            let p = Process()
            p.executableURL = try Paths.requireZonelink()
            p.arguments = ["serve", "--config", server.configURL.path, "--threads", "1", "--state-dir", server.dir.appendingPathComponent("state").path]
            p.currentDirectoryURL = server.dir
            p.standardInput = FileHandle.nullDevice
            p.standardError = try FileHandle(forWritingTo: server.stderrURL)
            p.standardOutput = try FileHandle(forWritingTo: server.stdoutURL)
            try launchProcess(p)
            current = p
            let deadline = monotonicNow() + 30
            while monotonicNow() < deadline {
                if !p.isRunning { throw HarnessError("zonelink did not start again.\n\(server.logs)") }
                if (try? await serial()) != nil { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw HarnessError("zonelink did not answer within 30 s of starting again.\n\(server.logs)")
        }

        /// The serial a plain client (no key) of the listener on `port` is answered.
        func plainSerial(_ port: UInt16) async throws -> UInt32 {
            let result = try await runProcess(Tools.kdig!, ["@127.0.0.1", "-p", "\(port)", "+time=5", "+retry=0", "+short", "SOA", Names.domain],
                                              timeout: 30)
            let fields = result.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard result.exited, result.status == 0, fields.count >= 3, let value = UInt32(fields[2]) else {
                throw HarnessError("no SOA from zonelink for a plain client: \(result.summary)")
            }
            return value
        }
        /// Waits until a plain client of `port` sees `expected` (after a change, clients get
        /// the new serial once the view is built again, off the answering thread).
        func plainSerial(_ port: UInt16, becomes expected: (UInt32) -> Bool, _ what: String) async throws -> UInt32 {
            let deadline = monotonicNow() + 30
            var seen: UInt32 = 0
            while monotonicNow() < deadline {
                seen = try await plainSerial(port)
                if expected(seen) { return seen }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw HarnessError("a plain client of port \(port) still sees serial \(seen), not \(what), after 30 s.\n\(server.logs)")
        }
        // Plain clients see the view's serial, the secondary's: not the catalog's counter (1).
        // The pinned listener is the Knot key's view (VPC 1, zone b); the source listener,
        // asked from 127.0.0.1 (in no vSwitch), is VPC 1 with no zone, a view no secondary carries.
        var last = try await serial()
        #expect(try await plainSerial(config.pinnedPort) == last, "a plain client and the secondary see one serial")
        var sourceLast = try await plainSerial(config.sourcePort)
        #expect(sourceLast > 1_000_000, "the source listener's serial is the view's, not the catalog's: \(sourceLast)")
        var beforeLast = last
        // Three changes in quick succession run the serial ahead of the clock.
        for address in ["127.10.2.51", "127.10.2.52", "127.10.2.53"] {
            try move(to: address)
            let next = try await serial(after: last)
            #expect(next &- last < 0x8000_0000, "\(next) is not after \(last)")
            beforeLast = last
            last = next
            _ = try await plainSerial(config.pinnedPort, becomes: { $0 == next }, "\(next)")
            let previous = sourceLast
            sourceLast = try await plainSerial(config.sourcePort, becomes: { $0 != previous }, "after \(previous)")
            #expect(sourceLast &- previous < 0x8000_0000, "a plain client's serial went from \(previous) to \(sourceLast)")
        }
        // `kdig +ixfr` from the serial before the last change shows that change alone (RFC 1995):
        // the old SOA, the moved ENI's records going and coming, not the whole zone.
        let delta = try await runProcess(Tools.kdig!, ["@127.0.0.1", "-p", "\(port)", "+time=5", "+retry=0",
                                                        "-y", "hmac-sha256:knot.key:\(SecondaryFixture.knotSecret)", "IXFR=\(beforeLast)", Names.domain], timeout: 30)
        let soas = delta.stdout.split(separator: "\n").filter { $0.contains("\tSOA\t") }
        #expect(delta.exited && delta.status == 0 && soas.count == 4 && delta.stdout.contains("127.10.2.52")
                && delta.stdout.contains("127.10.2.53") && !delta.stdout.contains("\tNS\t"), "IXFR=\(beforeLast):\n\(delta.summary)")
        // SIGTERM, same content: the same serial.
        current.terminate()
        #expect(waitForExit(current, timeout: 15), "zonelink did not stop on SIGTERM")
        try await restart()
        #expect(try await serial() == last, "same content after a restart keeps its serial")
        #expect(try await plainSerial(config.pinnedPort) == last, "a plain client after SIGTERM: the same serial, not 1")
        #expect(try await plainSerial(config.sourcePort) == sourceLast, "a plain client of the source listener after SIGTERM")
        // kill -9 right after a change: greater than before, and kept after the restart.
        try move(to: "127.10.2.54")
        let changed = try await serial(after: last)
        #expect(changed &- last < 0x8000_0000 && changed != last)
        _ = try await plainSerial(config.pinnedPort, becomes: { $0 == changed }, "\(changed)")
        let sourceBeforeKill = sourceLast
        sourceLast = try await plainSerial(config.sourcePort, becomes: { $0 != sourceBeforeKill }, "after \(sourceBeforeKill)")
        kill(current.processIdentifier, SIGKILL)
        current.waitUntilExit()
        try await restart()
        #expect(try await serial() == changed, "a serial written before kill -9 is kept")
        #expect(try await plainSerial(config.pinnedPort) == changed, "a plain client after kill -9: the serial from before")
        #expect(try await plainSerial(config.sourcePort) == sourceLast, "a plain client of the source listener after kill -9")
        try move(to: "127.10.2.55")
        let after = try await serial(after: changed)
        #expect(after &- changed < 0x8000_0000 && after != changed, "\(after) is not after \(changed)")
        _ = try await plainSerial(config.pinnedPort, becomes: { $0 == after }, "\(after)")
        print("serials: \(last) → \(changed) → \(after) across SIGTERM and kill -9, the same for plain clients")
        current.terminate()
        _ = waitForExit(current, timeout: 15)
    }

    @Test("Health: zone a's backend dies, the zone-a view's serial goes up and its NSD secondary answers the zone-b ENI",
          .enabled(if: Tools.nsd != nil, "nsd is not installed: apt-get install nsd"))
    func healthChangesTheZonalView() async throws {
        let nsdPort = try LoopbackPorts.free()
        // clb-1a gets a backend of its own (stopped below), probed every 500 ms; the secondary
        // carries the view of VPC 1's zone a.
        let single = "          - {address: 127.168.24.200, weight: 100}\n          - {address: 127.168.24.12, weight: 100}\n"
        let config = try TestConfig.local { yaml in
            yaml.replacingOccurrences(of: single, with: """
                          - {address: 127.168.23.200, weight: 100}
                        healthCheck: {interval: 500ms, timeout: 1s, unhealthyThreshold: 2}

                """).replacingOccurrences(of: "  zoneFiles: [", with: """
                  secondaries:
                    - name: nsd-zone-a
                      key: {name: nsd.key, secret: "\(SecondaryFixture.nsdSecret)"}
                      vpc: vpc-1
                      zone: eu-central-1a
                      notify: ["127.0.0.1:\(nsdPort)"]
                      allowFrom: [127.0.0.1]
                  zoneFiles: [
                """)
        }
        try #require(config.yaml.contains("127.168.23.200"), "zones/local.yaml's clb-1a backends changed; update this test")
        let zoneABackend = try BackendListeners(addresses: ["127.168.23.200"], port: config.backendPort)
        defer { zoneABackend.stop() }
        let server = try ZoneLinkServer.launch(config, tag: "xfr-health")
        var nsd: SecondaryServer?
        defer {
            nsd?.stop()
            server.kill()
            server.cleanUp()
        }
        try await offload { try server.waitUntilReady() }
        let secondary = try SecondaryServer.nsd(zone: Names.domain, primary: server.pinnedPort, secret: SecondaryFixture.nsdSecret, port: nsdPort)
        nsd = secondary
        try await offload { try secondary.waitForAnswer(Names.endpoint, [Names.eniA], timeout: 60, since: monotonicNow()) }
        let before = try #require(try await offload { try secondary.soaSerial(Names.domain) })

        zoneABackend.stop()
        let stoppedAt = monotonicNow()
        try await offload { try secondary.waitForAnswer(Names.endpoint, [Names.eniB], timeout: 60, since: stoppedAt) }
        let after = try #require(try await offload { try secondary.soaSerial(Names.domain) })
        #expect(after != before && after &- before < 0x8000_0000, "serial \(before) → \(after)")
        print("health: the zone-a secondary answers the zone-b ENI \(String(format: "%.2f", monotonicNow() - stoppedAt)) s after its backend stopped; serial \(before) → \(after)")
    }

    @Test("Catalog zone: a Knot consumer serves the view's zones, and a privateDomain that appears later, without a config change",
          .enabled(if: Tools.knotd != nil, "knotd is not installed: apt-get install knot"))
    func knotConsumesTheCatalog() async throws {
        let knotPort = try LoopbackPorts.free()
        let config = try TestConfig.local { yaml in
            yaml.replacingOccurrences(of: "  zoneFiles: [", with: """
                  privateDomainSuffixes: [provider.example]
                  secondaries:
                    - name: knot-zone-b
                      key: {name: knot.key, secret: "\(SecondaryFixture.knotSecret)"}
                      vpc: vpc-1
                      zone: eu-central-1b
                      notify: ["127.0.0.1:\(knotPort)"]
                      allowFrom: [127.0.0.1]
                  zoneFiles: [
                """)
        }
        let server = try ZoneLinkServer.launch(config, tag: "xfr-catalog")
        var knot: SecondaryServer?
        defer {
            knot?.stop()
            server.kill()
            server.cleanUp()
        }
        try await offload { try server.waitUntilReady() }
        let secondary = try SecondaryServer.knot(
            zone: Names.domain, primary: server.pinnedPort, secret: SecondaryFixture.knotSecret, port: knotPort, catalog: true)
        knot = secondary
        try await offload { try secondary.waitForAnswer(Names.endpoint, [Names.eniB], timeout: 60, since: monotonicNow()) }

        // The provider gives the service a private domain: a reload, nothing changes on Knot.
        let withDomain = config.yaml.replacingOccurrences(of: "    zoneAffinity: true\n", with: "    zoneAffinity: true\n    privateDomain: api.provider.example\n")
        try #require(withDomain != config.yaml, "zones/local.yaml's service changed; update this test")
        try server.writeConfig(withDomain)
        let changedAt = monotonicNow()
        server.hangUp()
        try await offload { try secondary.waitForAnswer("api.provider.example", [Names.eniB], timeout: 60, since: changedAt) }
        print("catalog: Knot serves the new private domain \(String(format: "%.2f", monotonicNow() - changedAt)) s after the reload")
    }

    @Test("zonelink check reads secret files: a missing or malformed one is an error at its key path, and no secret is printed")
    func checkReadsSecretsAndNeverPrintsThem() async throws {
        let binary = try Paths.requireZonelink()
        let dir = try Paths.makeTempDir("check-secrets")
        defer { try? FileManager.default.removeItem(at: dir) }
        let secretFile = dir.appendingPathComponent("knot.key")
        for (label, content, ok) in [("a good secret", SecondaryFixture.knotSecret + "\n", true),
                                     ("no base64", "not a secret " + SecondaryFixture.nsdSecret, false),
                                     ("no file", nil as String?, false)] {
            try? FileManager.default.removeItem(at: secretFile)
            if let content { try content.write(to: secretFile, atomically: true, encoding: .utf8) }
            let config = try SecondaryFixture.config(knotSecretFile: secretFile.path, notify: [53, 53])
            let file = dir.appendingPathComponent("zonelink.yaml")
            try config.yaml.write(to: file, atomically: true, encoding: .utf8)
            let r = try await runProcess(binary.path, ["check", "--config", file.path], cwd: dir, timeout: 30)
            #expect(r.exited && r.status == (ok ? 0 : 1), "\(label): \(r.summary)")
            if !ok { #expect(r.stderr.contains("dns.secondaries[1].key.secretFile:"), "\(label): \(r.summary)") }
            for secret in [SecondaryFixture.knotSecret, SecondaryFixture.nsdSecret] {
                #expect(!r.stdout.contains(secret) && !r.stderr.contains(secret), "\(label): a secret was printed: \(r.summary)")
            }
        }
    }
}
