import Testing
import ZoneLinkCore
@testable import ZoneLinkDNS

/// A query with an EDNS Client Subnet option for `network` (IPv4), as a forwarder sends it.
func queryWithSubnet(_ name: String, _ network: String, scope: UInt8 = 0) -> [UInt8] {
    let prefix = IPv4Prefix(network)!
    let octets = prefix.network.octets
    let address = Array([octets.0, octets.1, octets.2, octets.3].prefix((prefix.length + 7) / 8))
    var bytes = queryMessage(name, .a, edns: nil)
    bytes[11] = 1
    let option: [UInt8] = [0, 8, 0, UInt8(4 + address.count), 0, 1, UInt8(prefix.length), scope] + address
    bytes += [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, UInt8(option.count)] + option
    return bytes
}

/// The ECS option's (source prefix, scope prefix) in a response whose OPT record ends it.
func subnetOption(in response: [UInt8], addressLength: Int) -> (source: UInt8, scope: UInt8)? {
    let start = response.count - (8 + addressLength)
    guard start > 12, response[start] == 0, response[start + 1] == 8 else { return nil }
    return (response[start + 6], response[start + 7])
}

@Suite("EDNS Client Subnet (RFC 7871)")
struct ClientSubnetTests {
    let responder: Responder

    init() throws {
        let yaml = engineConfig.replacingOccurrences(
            of: "dns:\n", with: "dns:\n  trustedForwarders: [10.99.0.53, 10.98.0.0/24]\n")
        let catalog = try Catalog(configuration: Configuration.parse(yaml: yaml, file: "t"), file: "t")
        responder = Responder(engine: AnswerEngine(catalog: catalog))
    }

    @Test func aTrustedForwardersSubnetPicksTheZoneWithTheVSwitchScope() throws {
        let bytes = try #require(respond(responder, queryWithSubnet("ep-aff.epsrv-aff.\(suffix)", "10.10.2.0/24"), vpc: "vpc-1", source: "10.99.0.53"))
        #expect(decode(bytes)?.answer.map { $0.split(separator: " ").last! } == ["10.10.2.10"])
        #expect(subnetOption(in: bytes, addressLength: 3)?.scope == 24)
        let narrow = try #require(respond(responder, queryWithSubnet("ep-aff.epsrv-aff.\(suffix)", "10.10.1.128/25"), vpc: "vpc-1", source: "10.98.0.7"))
        #expect(decode(narrow)?.answer.map { $0.split(separator: " ").last! } == ["10.10.1.10"])
        #expect(subnetOption(in: narrow, addressLength: 4)?.scope == 24)
    }

    @Test func anUntrustedSourceIsIgnoredAndGetsScopeZero() throws {
        let bytes = try #require(respond(responder, queryWithSubnet("ep-aff.epsrv-aff.\(suffix)", "10.10.2.0/24"), vpc: "vpc-1", source: "10.97.0.1"))
        #expect(decode(bytes)?.answer.count == 2)
        #expect(subnetOption(in: bytes, addressLength: 3).map { [$0.source, $0.scope] } == [24, 0])
    }

    @Test func answersThatDoNotDependOnTheZoneHaveScopeZero() throws {
        let perZone = try #require(respond(responder, queryWithSubnet("ep-aff-eu-central-1a.epsrv-aff.\(suffix)", "10.10.2.0/24"), vpc: "vpc-1", source: "10.99.0.53"))
        #expect(subnetOption(in: perZone, addressLength: 3)?.scope == 0)
    }

    @Test func theSourceAddressComesFirst() throws {
        // A client inside a vSwitch is in that vSwitch's zone, whatever the option says.
        let bytes = try #require(respond(responder, queryWithSubnet("ep-aff.epsrv-aff.\(suffix)", "10.10.2.0/24"), vpc: "vpc-1", source: "10.10.1.77"))
        #expect(decode(bytes)?.answer.map { $0.split(separator: " ").last! } == ["10.10.1.10"])
    }

    @Test func malformedOptionsAreFormErr() throws {
        let nonzeroScope = try #require(respond(responder, queryWithSubnet("ep-aff.epsrv-aff.\(suffix)", "10.10.2.0/24", scope: 8), vpc: "vpc-1", source: "10.99.0.53"))
        #expect(decode(nonzeroScope)?.rcode == 1)
        var hostBits = queryWithSubnet("ep-aff.epsrv-aff.\(suffix)", "10.10.2.0/23")
        hostBits[hostBits.count - 1] = 3  // 10.10.3: a bit past the /23
        #expect(decode(try #require(respond(responder, hostBits, vpc: "vpc-1", source: "10.99.0.53")))?.rcode == 1)
    }
}
