import Foundation
import ZoneLinkControl

/// The last catalog state a host applied from a shared store, kept in its state directory
/// (`<state-dir>/last-applied.json`, 0600): a host that restarts while PostgreSQL is down
/// starts from it instead of serving nothing, and says so in the log and in `systemctl status`.
///
/// Written after every state the host applies (its own commits and other hosts'), by writing
/// a temporary file and renaming it over the old one, so a crash leaves the old or the new
/// file, never a torn one. Only read for the store it was written from.
public struct LastAppliedFile: Sendable {
    public let path: String

    public static let fileName = "last-applied.json"

    public init(stateDirectory: String) {
        path = (stateDirectory as NSString).appendingPathComponent(Self.fileName)
    }

    struct Contents: Codable {
        var store: String
        var revision: Int64
        var state: ControlState
    }

    /// Saves `stored` as what `store` held when it was applied.
    public func save(_ stored: StoredState, store: String) throws {
        let data = try JSONEncoder().encode(Contents(store: store, revision: stored.revision, state: stored.state))
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw StateStoreError("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            throw StateStoreError("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// What was last applied from `store`, or why there is nothing to start from.
    public func load(store: String) -> Result<StoredState, StateStoreError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(StateStoreError("there is no last applied catalog in \(path) (this host never applied one from the store)"))
        }
        do {
            let contents = try JSONDecoder().decode(Contents.self, from: data)
            guard contents.store == store else {
                return .failure(StateStoreError("\(path) was applied from \(contents.store), not from \(store)"))
            }
            return .success(StoredState(state: contents.state, revision: contents.revision))
        } catch {
            return .failure(StateStoreError("\(path) cannot be read: \(error)"))
        }
    }
}
