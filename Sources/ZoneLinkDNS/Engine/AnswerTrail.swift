import ZoneLinkCore

/// What answering decides on the way to an answer, told as it is decided.
///
/// The server and `zonelink dns explain` run the same code (`Responder.decide`, the engine,
/// `ZoneAffinity`); only the trail differs. The server passes `SilentTrail`, whose methods
/// are empty and vanish when the generic code is specialised, so serving pays nothing for
/// being explainable; explain passes `DecisionTrail`, which keeps every step. An explanation
/// is therefore the server's own decision, never a model of it that could drift.
protocol AnswerTrail {
    /// False for the server: the engine skips its precomputed shortcut only when recording.
    var isRecording: Bool { get }
    /// The view answering: a VPC's, or (nil) that of clients of no VPC.
    mutating func view(_ vpc: String?, known: Bool)
    /// The client's zone and how it was found.
    mutating func clientZone(_ zone: ZoneAffinity.ClientZone)
    /// The name is in no zone of the view and goes to the upstreams (`dns.upstreams`).
    mutating func forwarded()
    /// The zone whose apex is the longest suffix of the name; nil: none, REFUSED.
    mutating func zone(_ apex: DNSName?)
    /// One endpoint rrset's ENIs and which of them `ZoneAffinity.choose` kept.
    mutating func chose(owner: DNSName?, rdata: [[UInt8]], enis: [ENIID], choice: ZoneAffinity.Choice, health: ZoneHealth)
}

/// The server's trail: records nothing.
struct SilentTrail: AnswerTrail {
    var isRecording: Bool { false }
    func view(_ vpc: String?, known: Bool) {}
    func clientZone(_ zone: ZoneAffinity.ClientZone) {}
    func forwarded() {}
    func zone(_ apex: DNSName?) {}
    func chose(owner: DNSName?, rdata: [[UInt8]], enis: [ENIID], choice: ZoneAffinity.Choice, health: ZoneHealth) {}
}

/// Explain's trail: keeps each step as `Explanation` states it.
struct DecisionTrail: AnswerTrail {
    var explanation: Explanation

    var isRecording: Bool { true }

    mutating func view(_ vpc: String?, known: Bool) {
        explanation.view = known ? vpc : nil
        explanation.viewNote = switch (vpc, known) {
        case (let vpc?, true): "the view of VPC \(vpc): the shared names, its service names and private domains, the static zones"
        case (let vpc?, false): "VPC \(vpc) is not in the catalog: the view of clients of no VPC"
        case (nil, _): "the view of clients of no VPC: the shared names and the static zones"
        }
    }

    mutating func clientZone(_ zone: ZoneAffinity.ClientZone) {
        explanation.clientZone = zone.zone
        explanation.clientZoneFoundBy = zone.basis.rawValue
    }

    mutating func forwarded() {
        explanation.forwarded = true
    }

    mutating func zone(_ apex: DNSName?) {
        explanation.zone = apex?.description
    }

    mutating func chose(owner: DNSName?, rdata: [[UInt8]], enis: [ENIID], choice: ZoneAffinity.Choice, health: ZoneHealth) {
        let kept = Set(choice.kept)
        let clientZone = explanation.clientZone
        for (i, eni) in enis.enumerated() {
            let healthy = !health.unhealthy.contains(eni)
            let shiftedAway = health.shiftedZones.contains(eni.zone)
            let reason: String
            if kept.contains(i) {
                if choice.affinityApplied {
                    reason = "in the client's zone and healthy: zone affinity answers only this zone"
                } else if !choice.someHealthy {
                    reason = "no ENI of the name is healthy, so every ENI is answered (an answer that may work beats none)"
                } else if eni.zone == clientZone {
                    reason = "healthy, in the client's zone: answered first"
                } else {
                    reason = "healthy" + (clientZone == nil ? "" : "; after the client's zone")
                }
            } else if shiftedAway {
                reason = "its zone \(eni.zone) is shifted away (zonal shift), and another ENI of the name is healthy"
            } else if !healthy {
                reason = "unhealthy, and another ENI of the name is healthy"
            } else {
                reason = "not in the client's zone \(clientZone ?? "?"), which has a healthy ENI: zone affinity drops it"
            }
            let address = rdata.indices.contains(i) && rdata[i].count == 4
                ? rdata[i].map(String.init).joined(separator: ".") : "?"
            explanation.candidates.append(Explanation.Candidate(
                name: owner?.description ?? "", eni: eni.description, endpoint: eni.endpoint, zone: eni.zone, address: address,
                healthy: healthy, shiftedAway: shiftedAway, kept: kept.contains(i), reason: reason))
        }
    }
}
