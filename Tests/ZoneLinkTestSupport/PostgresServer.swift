import CZoneLinkSystem
import Foundation

/// A throwaway PostgreSQL cluster for one test: `initdb` into a temporary directory, the
/// server listening on a Unix socket in that directory only (no TCP port), run as the
/// `postgres` user when the tests run as root (PostgreSQL refuses root). `stop()` and
/// `start()` again simulate an outage; `remove()` stops it and deletes everything.
///
/// Needs Debian's postgresql-15 (`scripts/test` installs it).
public final class PostgresServer: @unchecked Sendable {
    public static let binaries = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
        .first { FileManager.default.isExecutableFile(atPath: "\($0)/initdb") }
    public static let installed = binaries != nil
    public static let missing = "PostgreSQL's server is not installed (apt-get install postgresql-15; scripts/test does)"

    public let directory: String
    public var dataDirectory: String { "\(directory)/data" }
    public var socketDirectory: String { directory }
    public let port = 5432
    public let database = "zonelink"

    /// The store URL for `serve --store` / `PostgresLocation`.
    public var url: String { "postgres://postgres@:\(port)/\(database)?host=\(socketDirectory)" }

    private init(directory: String) {
        self.directory = directory
    }

    /// Creates and starts a cluster with a `zonelink` database.
    /// - Throws: `TestSupportError` saying what failed (with the server's log).
    public static func create() throws -> PostgresServer {
        guard binaries != nil else { throw TestSupportError(missing) }
        let directory = "/tmp/zl-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let server = PostgresServer(directory: directory)
        if getuid() == 0 {
            guard run("/bin/chown", ["postgres:postgres", directory]).status == 0 else {
                throw TestSupportError("cannot chown \(directory) to the postgres user (is postgresql-15 installed?)")
            }
        }
        let initdb = server.tool("initdb", ["-D", server.dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        guard initdb.status == 0 else { throw TestSupportError("initdb failed: \(initdb.output)") }
        try server.start()
        let created = run(
            "/usr/bin/psql", ["-h", directory, "-p", "\(server.port)", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                              "-c", "CREATE DATABASE \(server.database)"])
        guard created.status == 0 else { throw TestSupportError("CREATE DATABASE failed: \(created.output)") }
        return server
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    public func start() throws {
        let started = tool(
            "pg_ctl", ["-D", dataDirectory, "-l", "\(directory)/server.log", "-w", "-t", "120",
                       "-o", "-k \(socketDirectory) -p \(port) -c listen_addresses='' -c fsync=off", "start"])
        guard started.status == 0 else { throw TestSupportError("pg_ctl start failed: \(started.output)\n\(log)") }
    }

    /// Stops the server (fast: clients are disconnected at once), as an outage would.
    public func stop() {
        _ = tool("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "120", "stop"])
    }

    /// Runs SQL through psql and returns its output (unaligned, tuples only).
    public func psql(_ sql: String) -> (status: Int32, output: String) {
        Self.run("/usr/bin/psql", ["-h", socketDirectory, "-p", "\(port)", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1",
                                   "-At", "-c", sql])
    }

    public var log: String { (try? String(contentsOfFile: "\(directory)/server.log", encoding: .utf8)) ?? "" }

    /// Stops the server and deletes its directory.
    public func remove() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func tool(_ name: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let path = "\(Self.binaries ?? "")/\(name)"
        if getuid() == 0 { return Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", path] + arguments) }
        return Self.run(path, arguments)
    }

    /// Runs a command to its end and returns its status and output. posix_spawn and waitpid,
    /// not `Process`: `pg_ctl start` leaves the server running, and Foundation's `Process`
    /// waits for every inherited descriptor to close, which a daemon never does.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let output = "/tmp/zl-pg-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of the test process: `pg_ctl start` leaves a server running for the rest
        // of the suite, and a socket it inherited (one a test accepted without SOCK_CLOEXEC, at
        // the moment of the spawn) would stay open in it after the test closes it: no FIN, a
        // peer waiting for an EOF that never comes (seen: the relay's slow-reader test).
        zl_spawn_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // An empty signal mask, as a shell would give (the Swift runtime's threads block most).
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else { return (-1, "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        // Exited: the status's high byte; killed by a signal: 128 + the signal, as a shell says.
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, text)
    }
}
