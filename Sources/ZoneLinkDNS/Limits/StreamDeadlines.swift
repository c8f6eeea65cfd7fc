import ZoneLinkCore

/// When a DNS-over-TCP connection is closed for taking too long (RFC 7766 section 6.2): idle
/// `idleTimeout` after the last complete query or answer (or the accept), and `messageTimeout`
/// after the first byte of a message that has not arrived in full. Bytes trickling in reset
/// neither: a client sending one byte every few seconds is closed like a silent one.
/// Pure: times are passed in (any fixed origin).
struct StreamDeadlines {
    enum Expiry: String, Sendable {
        case idle
        case message
    }

    let idleTimeout: Duration
    let messageTimeout: Duration
    /// The last complete query or answer, or the accept.
    private(set) var lastActivity: Duration
    /// The first byte of the message being received, when one is partly here.
    private(set) var messageStart: Duration?

    init(idleTimeout: Duration, messageTimeout: Duration, openedAt: Duration) {
        self.idleTimeout = idleTimeout
        self.messageTimeout = messageTimeout
        self.lastActivity = openedAt
    }

    /// A whole query arrived.
    mutating func queryReceived(at now: Duration) {
        lastActivity = max(lastActivity, now)
        messageStart = nil
    }

    /// An answer was written to the socket.
    mutating func answerWritten(at now: Duration) {
        lastActivity = max(lastActivity, now)
    }

    /// Part of a message is buffered (`true`) or none (`false`), as of `now`.
    mutating func partialMessage(_ partial: Bool, at now: Duration) {
        if !partial {
            messageStart = nil
        } else if messageStart == nil {
            messageStart = now
        }
    }

    /// The earliest instant the connection may be closed at, and for what.
    var next: (at: Duration, expiry: Expiry) {
        let idle = lastActivity + idleTimeout
        if let messageStart, messageStart + messageTimeout < idle { return (messageStart + messageTimeout, .message) }
        return (idle, .idle)
    }

    /// Whether the connection should be closed at `now`, and why.
    func expired(at now: Duration) -> Expiry? {
        let (at, expiry) = next
        return now >= at ? expiry : nil
    }
}
